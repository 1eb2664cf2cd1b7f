"""Copy a trained Stylizer into the package as its default weights, with provenance.

    python tools/ship_weights.py RUN_DIR [--profile cpu-long]

RUN_DIR is a project checkout where `dvc repro` ran (with `avsoundscape params PROFILE -o params.yaml`):
its `results/ldm/model` becomes `avsoundscape/weights/default/`, and `PROVENANCE.json` beside it records
the profile, the merged params, the data seed, the git commit the run was made from, and the run's
metrics (the ldm stage's held-out check, the evaluate stage's table and learned-task criterion, the RT60
estimator's own error)."""
import argparse
import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from avsoundscape.core import atomic_dir, load_params
from avsoundscape.stylize import Stylizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--profile", default="cpu-long")
    ap.add_argument("--note", default="", help="what PROVENANCE should say beyond the facts it gathers (e.g. stages run at other commits)")
    args = ap.parse_args()
    run, model = args.run_dir.resolve(), args.run_dir.resolve() / "results" / "ldm" / "model"
    Stylizer.from_pretrained(model, device="cpu")  # refuse anything that does not load
    params = load_params(run / "params.yaml")
    commit = subprocess.run(["git", "-C", str(run), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(run), "status", "--porcelain", "--", ".", ":!params.yaml", ":!dvc.lock"],
                           capture_output=True, text=True, check=True).stdout.strip()
    read = lambda p: json.loads((run / p).read_text()) if (run / p).is_file() else None
    provenance = {
        "profile": args.profile, "git_commit": commit, "tree_clean_except_params_and_lock": not dirty,
        "data": {"dataset": "SynthScapes", "seed": params["synth"]["seed"], "videos": params["synth"]["videos"],
                 "seconds": params["synth"]["seconds"], "enhancer": params["prepare"]["enhancer"]},
        **({"note": args.note} if args.note else {}),
        "params": params, "shipped": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": {"ldm": read("results/ldm/metrics.json"), "evaluate": read("results/evaluate/metrics.json"),
                    "rt60": read("results/rt60/metrics.json"),
                    "encoders": read("results/encoders/metrics.json"), "prepare": read("results/prepare/summary.json")},
    }
    dest = ROOT / "avsoundscape" / "weights" / "default"
    with atomic_dir(dest) as tmp:
        shutil.copytree(model, tmp, dirs_exist_ok=True)
        (tmp / "PROVENANCE.json").write_text(json.dumps(provenance, indent=1) + "\n")
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    print(f"shipped {model} -> {dest} ({size / 1e6:.1f} MB, commit {commit[:10]}, profile {args.profile})")


if __name__ == "__main__":
    main()
