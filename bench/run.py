"""`make bench`: every benchmark, in one run on this machine. Writes results/bench/{speed,quality,throughput,memory}.json,
results/bench/bench.md, and the performance section of README.md and nbs/index.ipynb (between the bench markers).
Needs the main job's outputs (SynthScapes, pairs, the RT60 estimator): run `make repro` first."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "bench"
sys.path.insert(0, str(ROOT / "tools"))
from sections import markers, put_section  # noqa: E402  (the README's generated sections)

START, END = markers("bench")


def child(script: str, *args) -> dict:
    "One measurement in a fresh process (its peak memory is its own); its last stdout line is JSON."
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script), *map(str, args)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"bench: {script} {' '.join(map(str, args))} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def spread(v: list[float]) -> dict:
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": len(v)}


def fmt(s: dict, digits: int = 2) -> str:
    "median [min-max] over n runs."
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def speed(runs: int, devices: list[str]) -> dict:
    res = {"equal_outputs": child("speed.py", "equal", 10.24), "inputs": []}
    for device in devices:
        for seconds in (10.24, 60.0):
            row = {"device": device, "audio_seconds": seconds}
            for method in ("ours", "reference"):
                r = child("speed.py", "run", method, seconds, runs, device)
                row[method] = {"rtf": spread(r["rtf"]), "wall_s": spread(r["wall_s"]), "peak_rss_mb": r["peak_rss_mb"],
                               "threads": r["threads"], **({"peak_gpu_mb": r["peak_gpu_mb"]} if "peak_gpu_mb" in r else {})}
            row["speedup"] = row["reference"]["wall_s"]["median"] / row["ours"]["wall_s"]["median"]
            res["inputs"].append(row)
    res.update({k: r[k] for k in ("steps", "guidance", "sampler", "render")})
    return res


def choose(points: list[dict]) -> dict:
    "The fewest steps whose every measure is within the 95 % CI of the best point's mean (DPM-Solver++ on a tie)."
    keys = ("rt60_error_s", "ambient_distance_db", "logmel_l1_db")
    best = {k: min(points, key=lambda p: p[k]["mean"])[k] for k in keys}
    ok = [p for p in points if all(p[k]["mean"] <= best[k]["mean"] + best[k]["ci95"] for k in keys)]
    pick = min(ok, key=lambda p: (p["steps"], p["sampler"] != "dpmsolver++"))
    return {"sampler": pick["sampler"], "steps": pick["steps"],
            "rule": "fewest steps whose RT60 error, ambient distance and log-mel L1 are all within the 95 % CI of the best point"}


def tables(meta: dict, sp: dict, q: dict, th: dict, mem: dict) -> str:
    md = [f"Measured by `make bench` on {meta['date']} (commit {meta['commit'][:10]}): {meta['machine']}. "
          f"Figures are the median [min-max] of several runs.", ""]
    md += [f"**Stylization speed** (default model, {sp['render']} render, {sp['steps']} {sp['sampler']} steps, guidance {sp['guidance']:g}; "
           "real-time factor = seconds of compute per second of audio; the reference drives the same weights with a plain "
           f"diffusers-style loop; outputs equal to {sp['equal_outputs']['max_abs_diff']:.1e}):", "",
           "| device | input | ours RTF | reference RTF | speed-up | ours peak RSS | reference peak RSS |",
           "|---|---|---|---|---|---|---|"]
    for r in sp["inputs"]:
        md.append(f"| {r.get('device', 'cpu')} | {r['audio_seconds']:g} s | {fmt(r['ours']['rtf'])} | {fmt(r['reference']['rtf'])} | "
                  f"{r['speedup']:.2f}x | {r['ours']['peak_rss_mb']:.0f} MB | {r['reference']['peak_rss_mb']:.0f} MB |")
    md += ["", f"**Sampler steps against quality** ({q['cases']} cross-scene test cases, {q.get('render', 'default')} render, "
           f"guidance {q['guidance']:g}, mean ± 95 % CI; seconds for all cases):", "", "| sampler | steps | RT60 err (s) | ambient dist (dB) | log-mel L1 (dB) | seconds |",
           "|---|---|---|---|---|---|"]
    for p in q["points"]:
        cell = lambda k: f"{p[k]['mean']:.3f} ± {p[k]['ci95']:.3f}"
        md.append(f"| {p['sampler']} | {p['steps']} | {cell('rt60_error_s')} | {cell('ambient_distance_db')} | "
                  f"{cell('logmel_l1_db')} | {p['seconds']:.1f} |")
    c = q["choice"]
    md += ["", f"Chosen: **{c['sampler']}, {c['steps']} steps** ({c['rule']}).", "",
           "**Throughput** (CPU):", "", "| what | rate |", "|---|---|"]
    for k, v in th["training_examples_per_s"].items():
        md.append(f"| training `{k}` | {fmt(spread(v), 1)} examples/s |")
    for k, v in th["data_video_s_per_cpu_s"].items():
        md.append(f"| {k.replace('_', ' ')} | {fmt(spread(v), 1)} s of video per CPU-second |")
    peak = {k: spread([r["peak_rss_mb"] for r in v]) for k, v in mem.items()}
    md += ["", f"**Memory**: stylizing {mem['long'][0]['audio_seconds'] / 60:g} minutes (streamed to the output file, "
           f"{mem['long'][0]['steps']} steps: the step count does not change what is held) peaks at {fmt(peak['long'], 0)} MB "
           f"resident, against {fmt(peak['short'], 0)} MB for {mem['short'][0]['audio_seconds']:g} s; each in its own process."]
    return "\n".join(md) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3, help="runs per speed and memory figure")
    ap.add_argument("--render", action="store_true", help="only rewrite bench.md and the README section from results/bench/*.json")
    args = ap.parse_args(argv)
    if args.render:
        parts = {k: json.loads((OUT / f"{k}.json").read_text()) for k in ("meta", "speed", "quality", "throughput", "memory")}
        md = tables(*parts.values())
        (OUT / "bench.md").write_text(md)
        for f in (ROOT / "README.md", ROOT / "nbs" / "index.ipynb"):
            put_section(f, md)
        return 0
    sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
    os.chdir(ROOT)
    import torch

    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    meta = {"date": datetime.date.today().isoformat(), "commit": commit, "torch": torch.__version__,
            "machine": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads, {gpu}"}
    sp = speed(args.runs, ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))  # CUDA too where there is one
    import quality
    import throughput

    q = quality.sweep()
    q["choice"] = choose(q["points"])
    th = {"training_examples_per_s": throughput.training(), "data_video_s_per_cpu_s": throughput.data()}
    mem = {k: [child("memory.py", s) for _ in range(args.runs)] for k, s in (("long", 600.0), ("short", 10.24))}
    for name, obj in (("speed", sp), ("quality", q), ("throughput", th), ("memory", mem), ("meta", meta)):
        (OUT / f"{name}.json").write_text(json.dumps(obj, indent=1) + "\n")
    md = tables(meta, sp, q, th, mem)
    (OUT / "bench.md").write_text(md)
    for f in (ROOT / "README.md", ROOT / "nbs" / "index.ipynb"):
        put_section(f, md)
    print(md)
    print(f"bench: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
