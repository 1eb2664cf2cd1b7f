"""The README's generated sections: `tools/sections.py` puts a run's results.md between the `results` markers, and
the committed README carries the same results section as nbs/index.ipynb, written from a run (never typed)."""
import json
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from sections import main, markers  # noqa: E402

START, END = markers("results")


def _section(text: str) -> str:
    return text[text.index(START) + len(START): text.index(END)].strip()


def test_sections_cli_writes_markdown_and_notebook(tmp_path):
    src, md, nb = tmp_path / "results.md", tmp_path / "README.md", tmp_path / "index.ipynb"
    src.write_text("| a | b |\n|---|---|\n| 1 | 2 |")
    md.write_text(f"# x\n{START}\nold\n{END}\ntail\n")
    nb.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": [f"## R\n", f"{START}\n", "old\n", END]}]}))
    assert main(["results", str(src), str(nb), str(md)]) == 0
    assert main(["results", str(src), str(nb), str(md)]) == 0  # idempotent
    assert _section(md.read_text()) == src.read_text() and md.read_text().endswith(f"{END}\ntail\n")
    assert _section("".join(json.loads(nb.read_text())["cells"][0]["source"])) == src.read_text()
    with pytest.raises(SystemExit, match="does not exist"):
        main(["results", str(tmp_path / "none.md"), str(md)])
    with pytest.raises(SystemExit, match="has no <!-- bench:start -->"):  # another section's markers
        main(["bench", str(src), str(md)])


def test_readme_results_come_from_a_run():
    readme = (ROOT / "README.md").read_text()
    index = "".join("".join(c["source"]) for c in json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"])
    assert _section(readme) == _section(index)
    text = _section(readme)
    for baseline in ("separate & remix", "DSP matching", "DSP reverb + remix"):  # report.results_section's lines
        assert f"ours (audio-visual) − {baseline}" in text and f"- vs {baseline} (" in text, baseline
    assert "cross-scene cases" in text and "- rooms: vs DSP matching" in text
