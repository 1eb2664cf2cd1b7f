"""Sampler steps against quality: DDIM and DPM-Solver++ at 5, 10, 25 and 50 steps on SynthScapes' cross-scene test
cases (one per test video), scored with the evaluation's measures (RT60 error, ambient distance, log-mel L1).
The sweep uses the latent render, the one the sampler serves: the waveform render, the default model's, reads the room and
the background from the condition and samples nothing, so its steps change nothing."""
from __future__ import annotations

import time
from pathlib import Path

from inputs import SYNTH, need
from speed import load

STEPS = (5, 10, 25, 50)
SAMPLERS = ("ddim", "dpmsolver++")
RENDER = "latent"


def sweep(checkpoint: str | None = None, per_video: int = 1) -> dict:
    "Per (sampler, steps): the mean and 95 % CI of each measure over the cases, and the seconds the sweep point took."
    from avsoundscape.rt60 import load_rt60
    from avsoundscape.testset import build_cases, mean_ci, score_output

    st = load(checkpoint)
    cases = build_cases(need(SYNTH, "SynthScapes"), "test", per_video=per_video, seconds=4.0, cond_seconds=2.56, seed=0)
    est = load_rt60(need(Path("results/rt60/model"), "the RT60 estimator"))
    points = []
    for sampler in SAMPLERS:
        for steps in STEPS:
            t0, rows = time.perf_counter(), []
            for c in cases:
                out = st.stylize(c.input, c.cond_wav, c.cond_frame, steps=steps, sampler=sampler, seed=0, render=RENDER)
                rows.append(score_output(c, out, est))
            points.append({"sampler": sampler, "steps": steps, "seconds": time.perf_counter() - t0,
                           **{k: mean_ci([r[k] for r in rows]) for k in ("rt60_error_s", "ambient_distance_db", "logmel_l1_db")}})
    return {"cases": len(cases), "guidance": st.config["guidance"], "render": RENDER, "points": points}
