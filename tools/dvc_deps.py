"""Each DVC stage's module dependencies, derived from the imports of its pipeline notebook.

A stage runs one notebook of `nbs/pipeline/`; the modules it depends on are the `avsoundscape`
modules that notebook imports, and every module those import in turn (module-level or inside a
function: a lazy import runs all the same), with the data files a module reads from beside it (`avsoundscape/<module>.tsv`).
This script computes that closure and writes it into
`dvc.yaml` in place of the hand-typed `avsoundscape/*.py` entries, keeping every other dependency
(the notebook, data, upstream outputs) and the file's comments.

    python tools/dvc_deps.py           # rewrite dvc.yaml
    python tools/dvc_deps.py --check   # exit 1, listing the stages whose modules disagree
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "avsoundscape"
SKIP = {"__init__", "_modidx"}


def imported_modules(source: str, package: str = PACKAGE, root: Path = ROOT) -> set[str]:
    "Names of the `package` modules that `source` imports anywhere (absolute `package.x` or relative `.x`)."
    found, is_module = set(), lambda n: (root / package / f"{n}.py").exists()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith(package + ".")}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 and mod:  # from .x import y
                found.add(mod.split(".")[0])
            elif node.level == 1 or mod == package:  # from . import x / from avsoundscape import x (or __version__)
                found |= {a.name for a in node.names if is_module(a.name)}
            elif mod.startswith(package + "."):
                found.add(mod.split(".")[1])
    return found - SKIP


def notebook_source(path: Path) -> str:
    "The code cells of a notebook, IPython magics and shell lines dropped."
    cells = json.loads(path.read_text())["cells"]
    lines = [l for c in cells if c["cell_type"] == "code" for l in "".join(c["source"]).splitlines()]
    return "\n".join(l for l in lines if not l.lstrip().startswith(("%", "!")))


def closure(start: set[str], root: Path = ROOT) -> list[str]:
    "`start` and every package module they import, transitively, as sorted `avsoundscape/x.py` paths (each followed by its data files)."
    seen, todo = set(), list(start)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        path = root / PACKAGE / f"{m}.py"
        if not path.exists():
            raise SystemExit(f"{path}: imported but missing (is the notebook exported?)")
        seen.add(m)
        todo += imported_modules(path.read_text(), root=root) - seen
    data = lambda m: sorted(p.name for p in (root / PACKAGE).glob(f"{m}.*") if p.suffix != ".py")  # e.g. material.tsv
    return [f"{PACKAGE}/{name}" for m in sorted(seen) for name in [f"{m}.py", *data(m)]]


def stage_notebook(stage: dict) -> str | None:
    "The pipeline notebook a stage runs: its first dependency under nbs/pipeline/."
    return next((d for d in stage.get("deps", []) if str(d).startswith("nbs/pipeline/") and str(d).endswith(".ipynb")), None)


def derived(stages: dict, root: Path = ROOT) -> dict[str, list[str]]:
    "Stage name -> its derived module dependencies."
    out = {}
    for name, stage in stages.items():
        nb = stage_notebook(stage)
        if nb is not None:
            out[name] = closure(imported_modules(notebook_source(root / nb), root=root), root)
    return out


def declared(stage: dict) -> list[str]:
    "The module dependencies a stage declares."
    return sorted(str(d) for d in stage.get("deps", []) if str(d).startswith(PACKAGE + "/"))


def mismatches(dvc_yaml: Path = ROOT / "dvc.yaml", root: Path = ROOT) -> dict[str, dict]:
    "Stages whose declared modules differ from the derived ones: {stage: {missing: [...], extra: [...]}}."
    import yaml

    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    out = {}
    for name, want in derived(stages, root).items():
        have = declared(stages[name])
        if have != want:
            out[name] = {"missing": sorted(set(want) - set(have)), "extra": sorted(set(have) - set(want))}
    return out


def rewrite(dvc_yaml: Path = ROOT / "dvc.yaml", root: Path = ROOT) -> list[str]:
    "Write the derived module dependencies into `dvc_yaml` (comments kept); return the stages changed."
    from ruamel.yaml import YAML

    y = YAML()
    y.preserve_quotes, y.width = True, 4096
    y.indent(mapping=2, sequence=4, offset=2)
    doc = y.load(dvc_yaml.read_text())
    changed = []
    for name, want in derived(doc["stages"], root).items():
        deps = doc["stages"][name]["deps"]
        if declared(doc["stages"][name]) == want:
            continue
        keep = [d for d in deps if not str(d).startswith(PACKAGE + "/")]
        deps.clear()
        deps.extend(keep + want)
        changed.append(name)
    with open(dvc_yaml, "w") as f:
        y.dump(doc, f)
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report disagreements (exit 1 if any)")
    args = ap.parse_args(argv)
    if args.check:
        bad = mismatches()
        for name, d in bad.items():
            print(f"{name}: missing {d['missing']}, extra {d['extra']}")
        return 1 if bad else 0
    changed = rewrite()
    print("dvc.yaml: module dependencies rewritten for " + (", ".join(changed) if changed else "no stage (already derived)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
