"""dvc.yaml's module dependencies are the imports of each stage's notebook (tools/dvc_deps.py), never typed by hand."""
import importlib.util
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("dvc_deps", ROOT / "tools" / "dvc_deps.py")
dvc_deps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dvc_deps)


def test_dvc_yaml_matches_the_notebooks_imports():
    assert dvc_deps.mismatches() == {}, "run `python tools/dvc_deps.py` and commit dvc.yaml"


def test_imports_found_anywhere_relative_or_absolute():
    src = ("import os\nfrom avsoundscape.audio import x\nimport avsoundscape.video as v\n"
           "def f():\n    from .metrics import y\n    from . import decay\n    from avsoundscape import __version__\n")
    assert dvc_deps.imported_modules(src) == {"audio", "video", "metrics", "decay"}


def test_closure_follows_lazy_imports():
    # render imports vad inside a function only (background_power), and baselines imports render at module level
    assert "from avsoundscape.vad import" not in (dvc_deps.ROOT / "avsoundscape" / "render.py").read_text().split("def ")[0]
    deps = dvc_deps.closure({"baselines"})
    assert {"avsoundscape/render.py", "avsoundscape/vad.py", "avsoundscape/augment.py"} <= set(deps)
    assert "avsoundscape/synthscapes.py" not in deps


def test_a_module_brings_its_data_file():
    deps = dvc_deps.closure({"material"})
    assert deps[deps.index("avsoundscape/material.py") + 1] == "avsoundscape/material.tsv"  # the material catalogue
    assert not [d for d in dvc_deps.closure({"audio"}) if not d.endswith(".py")]


def test_a_missing_or_extra_module_is_caught(tmp_path):
    for sub in ("avsoundscape", "nbs"):
        shutil.copytree(ROOT / sub, tmp_path / sub)
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    deps = doc["stages"]["realdev"]["deps"]
    deps.remove("avsoundscape/decay.py")
    doc["stages"]["frontend"]["deps"].append("avsoundscape/room.py")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(doc))
    bad = dvc_deps.mismatches(tmp_path / "dvc.yaml", tmp_path)
    assert bad["realdev"] == {"missing": ["avsoundscape/decay.py"], "extra": []}
    assert bad["frontend"] == {"missing": [], "extra": ["avsoundscape/room.py"]}
    assert set(bad) == {"realdev", "frontend"}
    dvc_deps.rewrite(tmp_path / "dvc.yaml", tmp_path)
    assert dvc_deps.mismatches(tmp_path / "dvc.yaml", tmp_path) == {}
