"""End-to-end smoke run of the DVC pipeline, on a copy of the project with the tiny params profile, and its
listening report opened in a real headless browser (Debian's chromium)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT



def _copy_project(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file() and not f.startswith("results/"):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    "A copy of the project after `dvc repro` with the tiny profile: (folder, run)."
    proj = tmp_path_factory.mktemp("smoke") / "proj"
    proj.mkdir()
    _copy_project(proj)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = lambda *a: subprocess.run(a, cwd=proj, env=env, capture_output=True, text=True)
    for cmd in (["avsoundscape", "params", "tiny", "-o", "params.yaml"],  # profiles/tiny.yaml merged, as `make repro PROFILE=tiny` does
                ["git", "init", "-q"], ["dvc", "pull", "-q", "data.dvc"], ["dvc", "repro"]):
        r = run(*cmd)
        assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}"
    return proj, run


def test_dvc_repro_smoke(tiny_run):
    proj, run = tiny_run
    stages = yaml.safe_load((proj / "dvc.yaml").read_text())["stages"]
    for stage in stages:
        assert (proj / "results" / stage / f"{stage}.ipynb").is_file(), f"stage {stage}: no executed notebook"
    r = run("dvc", "metrics", "show", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    declared = yaml.safe_load((proj / "dvc.yaml").read_text())["metrics"]
    assert all(f in r.stdout for f in declared), r.stdout  # DVC reads every declared metrics file
    read = lambda stage: json.loads((proj / "results" / stage / "metrics.json").read_text())
    assert 0 < read("frontend")["roundtrip_logmel_l1_db"] < 6  # Griffin-Lim's round trip keeps the mel within a few dB
    rt = read("rt60")["abs_error_s"]
    assert 0 < rt["mean"] < 5 and rt["ci95"] > 0
    ev = read("evaluate")["methods"]
    dry = ev["dry"]  # nested: input -> method id -> mean scores
    assert dry["oracle"]["logmel_l1_db"] == 0.0 and dry["oracle"]["pesq"] > 4
    for m in ("separate_remix", "dsp_matching", "ours_av"):  # every method that adds a background beats silence
        assert dry[m]["ambient_level_error_db"] < dry["identity"]["ambient_level_error_db"] - 10, m
    r = run("dvc", "status")
    assert "changed" not in r.stdout, r.stdout


def test_every_stage_output_is_declared(tiny_run):
    "What a stage writes under results/<stage>/ is one of its declared outs, metrics or plots: DVC removes those before a"
    "stage runs again, so an undeclared checkpoint folder would make the second `dvc repro` of a changed stage fail."
    proj, _ = tiny_run
    spec = yaml.safe_load((proj / "dvc.yaml").read_text())
    name = lambda o: next(iter(o)) if isinstance(o, dict) else o
    declared = {name(o) for s in spec["stages"].values() for k in ("outs", "metrics", "plots") for o in s.get(k) or []}
    declared |= {name(o) for k in ("metrics", "plots") for o in spec.get(k) or []}
    for stage in spec["stages"]:
        for p in sorted((proj / "results" / stage).iterdir()):
            rel = p.relative_to(proj).as_posix()
            assert rel in declared or any(rel.startswith(d + "/") for d in declared), f"stage {stage} writes {rel}, not declared in dvc.yaml"


def test_realdev_and_real_material_in_the_smoke_run(tiny_run):
    import json

    proj, _ = tiny_run
    rd = json.loads((proj / "results" / "realdev" / "metrics.json").read_text())
    assert set(rd["tracks"]) == {"scenes", "rooms"} and rd["speakers"] and rd["material_files"] >= 4
    for track, m in rd["tracks"].items():
        methods = m["methods"][track]
        assert {"identity", "separate_remix", "dsp_matching", "dsp_reverb_remix", "ours_av", "oracle"} <= set(methods), methods
        assert methods["oracle"]["logmel_l1_db"] == 0.0
        assert rd["rt60_measure"][track]["decay_abs_error_on_true_targets_s"]["mean"] >= 0
    manifest = json.loads((proj / "results" / "realdev" / "manifest.json").read_text())
    assert all(f["pool"] == "realdev" and f["licence"] and len(f["sha256"]) == 64 for f in manifest["files"])
    assert "ours (audio-visual) − DSP matching" in (proj / "results" / "realdev" / "paired.md").read_text()
    synth = json.loads((proj / "results" / "synth" / "summary.json").read_text())
    kinds = synth["material"]["all"]
    assert abs(sum(kinds["voices"].values()) - 1) < 0.01 and set(kinds["pictures"]) == {"recorded", "procedural"}
    prep = json.loads((proj / "results" / "prepare" / "summary.json").read_text())
    assert {"none", "gated", "deepfilternet"} <= set(prep["enhancers_compared"])


def test_report_opens_in_headless_chromium(tiny_run):
    proj, _ = tiny_run
    page = proj / "results" / "report" / "index.html"
    assert page.is_file()
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: `make test` installs it (apt-get install chromium)"
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--allow-file-access-from-files"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    players = re.findall(r'<audio[^>]*src="([^"]+)"', html)
    assert len(players) >= 2 * 4, f"{len(players)} players"  # 2 report cases x (input, condition, methods, target)
    assert all((page.parent / src).is_file() for src in players), "a player points at a missing file"
    assert '<table id="main-table">' in html and "RT60 err (s)" in html and "ours (audio-visual)" in html
    shot = proj / "results" / "report" / "screenshot.png"
    r = subprocess.run([*flags, "--window-size=1280,1600", f"--screenshot={shot}", page.as_uri()], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and shot.stat().st_size > 20_000, r.stderr[-2000:]


def _printed(notebook: Path) -> str:
    "What an executed notebook's cells printed (their stream outputs), not their source."
    import json

    cells = json.loads(notebook.read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []) if o.get("output_type") == "stream")


def _variant(tiny_run, dst: Path, ldm: dict):
    "A copy of the finished tiny project (its DVC cache included) with the `ldm` params group updated."
    proj, _ = tiny_run
    shutil.copytree(proj, dst, symlinks=True)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["ldm"].update(ldm)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return dst, env


def test_killed_dvc_repro_resumes_ldm_and_ends_as_an_uninterrupted_run(tiny_run, tmp_path):
    "Kill `dvc repro` while `ldm` trains; the next `dvc repro` continues from the last checkpoint (not step 0) and"
    "ends with the metrics of a run that was never interrupted (separate copies: no run cache to restore from)."
    import json
    import signal
    import time

    ldm = {"steps": 160, "ckpt_every": 20}
    whole, env = _variant(tiny_run, tmp_path / "whole", ldm)
    r = subprocess.run(["dvc", "repro", "ldm"], cwd=whole, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    killed, env = _variant(tiny_run, tmp_path / "killed", ldm)
    ck = killed / "results" / "ldm" / "checkpoints"
    steps = lambda: {c.name for c in ck.iterdir() if c.name.startswith("step-")} if ck.is_dir() else set()
    before = steps()  # the tiny run's own checkpoint: another run's, to be replaced
    p = subprocess.Popen(["dvc", "repro", "ldm"], cwd=killed, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    while not steps() - before:
        assert p.poll() is None, "dvc repro ended before the first checkpoint"
        assert time.time() - t0 < 600, "no checkpoint after 10 minutes"
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # dvc, papermill and the kernel, mid-training
    p.wait()
    done = sorted(c.name for c in ck.iterdir() if c.name.startswith("step-"))
    assert done and done[-1] != "step-0000160", done  # killed before the end
    r = subprocess.run(["dvc", "repro", "ldm"], cwd=killed, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    log = _printed(killed / "results" / "ldm" / "ldm.ipynb")
    assert "resumed from a checkpoint of this run" in log and "from step 0" not in log, log
    a, b = (json.loads((d / "results" / "ldm" / "metrics.json").read_text()) for d in (whole, killed))
    assert a["steps"] == b["steps"] == 160

    def leaves(x, pre=""):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from leaves(v, f"{pre}/{k}")
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            yield pre, float(x)

    la, lb = dict(leaves(a)), dict(leaves(b))
    assert la.keys() == lb.keys() and la
    for k in la:  # resumption is exact on the CPU (the Trainer's own resume test); the tolerance only absorbs printing
        assert abs(la[k] - lb[k]) <= 1e-5 * max(1.0, abs(la[k])), (k, la[k], lb[k])
    rows = (killed / "results" / "ldm" / "metrics.csv").read_text().splitlines()
    assert rows == (whole / "results" / "ldm" / "metrics.csv").read_text().splitlines()  # one loss log, no step twice


def test_ldm_checkpoints_of_other_params_are_not_resumed(tiny_run, tmp_path):
    "Checkpoints persist between runs for resuming; a run with other params must start over, not continue them."
    proj, env = _variant(tiny_run, tmp_path / "other", {"lr": 0.0004})
    stale = sorted(c.name for c in (proj / "results" / "ldm" / "checkpoints").iterdir() if c.name.startswith("step-"))
    assert stale, "the tiny run left no ldm checkpoint to test with"
    r = subprocess.run(["dvc", "repro", "ldm"], cwd=proj, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    log = _printed(proj / "results" / "ldm" / "ldm.ipynb")
    assert "from step 0" in log and "resumed" not in log, log
