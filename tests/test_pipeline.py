"""End-to-end smoke run of the DVC pipeline, on a copy of the project with the tiny params profile."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT

TINY = ROOT / "tests" / "params_tiny.yaml"


def _copy_project(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file() and not f.startswith("results/"):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)


def test_dvc_repro_smoke(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    _copy_project(proj)
    shutil.copy(TINY, proj / "params.yaml")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = lambda *a: subprocess.run(a, cwd=proj, env=env, capture_output=True, text=True)
    for cmd in (["git", "init", "-q"], ["dvc", "pull", "-q", "data.dvc"], ["dvc", "repro"]):
        r = run(*cmd)
        assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}"
    stages = yaml.safe_load((proj / "dvc.yaml").read_text())["stages"]
    for stage in stages:
        assert (proj / "results" / stage / f"{stage}.ipynb").is_file(), f"stage {stage}: no executed notebook"
    r = run("dvc", "metrics", "show", "--json")
    assert r.returncode == 0 and "roundtrip_logmel_l1_db" in r.stdout, r.stdout + r.stderr
    r = run("dvc", "status")
    assert "changed" not in r.stdout, r.stdout
