"""Generated sections of the README: text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in a markdown
file, or in the markdown cell of a notebook that has the markers, replaced by a file's content.

    python tools/sections.py results results/figures/results.md nbs/index.ipynb README.md

`make bench` writes the `bench` section (bench/run.py); `make readme` writes the `results` section from the
main job's own `results/figures/results.md`, then converts nbs/index.ipynb into README.md."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    "The start and end markers of section `name`."
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_section(s: str, text: str, where: str, name: str = "bench") -> str:
    "`s` with what lies between the markers of section `name` replaced by `text`."
    start, end = markers(name)
    if start not in s or end not in s:
        raise SystemExit(f"{name}: {where} has no {start} ... {end} section")
    return s[: s.index(start) + len(start)] + "\n" + text + s[s.index(end):]


def put_section(path: Path, text: str, name: str = "bench") -> None:
    "Write `text` between the markers of section `name` of a markdown file, or of the markdown cell of a notebook that has them."
    path = Path(path)
    if path.suffix != ".ipynb":
        path.write_text(replace_section(path.read_text(), text, str(path), name))
        return
    nb = json.loads(path.read_text())
    start = markers(name)[0]
    cell = next((c for c in nb["cells"] if start in "".join(c["source"])), None)
    if cell is None:
        raise SystemExit(f"{name}: {path} has no cell with {start}")
    src = replace_section("".join(cell["source"]), text, str(path), name)
    lines = src.split("\n")
    cell["source"] = src if isinstance(cell["source"], str) else [x + "\n" for x in lines[:-1]] + [lines[-1]]
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="the section's name (its markers)")
    ap.add_argument("source", type=Path, help="the file whose content goes into the section")
    ap.add_argument("targets", type=Path, nargs="+", help="markdown files or notebooks that hold the section")
    args = ap.parse_args(argv)
    if not args.source.is_file():
        raise SystemExit(f"{args.name}: {args.source} does not exist (run the job that writes it first)")
    text = args.source.read_text()
    for t in args.targets:
        put_section(t, text if text.endswith("\n") else text + "\n", args.name)
    print(f"{args.name}: {args.source} -> {', '.join(map(str, args.targets))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
