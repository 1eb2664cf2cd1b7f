"""Stylization speed and peak memory: our `Stylizer` against the plain diffusers-style loop of `reference.py`, same
checkpoint, steps, guidance and initial noise. Each (method, input length) runs in its own process, so its peak
memory (ru_maxrss) is its own."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from inputs import scene, speech

STEPS, GUIDANCE, SAMPLER = 25, 2.0, "dpmsolver++"
RENDER = "latent"  # the render the reference loop reproduces: sampled latent, vocoded


def peak_rss_mb() -> float:
    "This process's peak resident memory since it started (VmHWM: unlike ru_maxrss, not inherited from a parent)."
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


class MelProbe(torch.nn.Module):
    "A deterministic stand-in vocoder for the equality check: Griffin-Lim starts from random phases, this does not."

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        flat = mel.flatten(1)
        return flat.repeat(1, -(-mel.shape[-1] * 160 // flat.shape[1]))[:, : mel.shape[-1] * 160]


def load(checkpoint: str | None, device: str = "cpu"):
    from avsoundscape.stylize import Stylizer, default_checkpoint

    return Stylizer.from_pretrained(checkpoint or default_checkpoint(), device=device)


def run(method: str, seconds: float, runs: int, device: str = "cpu", checkpoint: str | None = None) -> dict:
    "Wall seconds of `runs` stylizations of `seconds` of speech on `device`, real-time factors, and peak memory."
    from reference import reference_stylize

    st, x, (audio, frame) = load(checkpoint, device), speech(seconds), scene()
    go = {"ours": lambda: st.stylize(x, audio, frame, STEPS, GUIDANCE, SAMPLER, seed=0, render=RENDER),
          "reference": lambda: reference_stylize(st, x, audio, frame, STEPS, GUIDANCE, SAMPLER, seed=0)}[method]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = go()
        times.append(time.perf_counter() - t0)
        assert out.shape == x.shape and torch.isfinite(out).all()
    gpu = {"peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20} if st.device.type == "cuda" else {}
    return {"method": method, "device": str(st.device), "audio_seconds": seconds, "steps": STEPS, "guidance": GUIDANCE,
            "sampler": SAMPLER, "render": RENDER, "threads": torch.get_num_threads(), "wall_s": times, "rtf": [t / seconds for t in times],
            "peak_rss_mb": peak_rss_mb(), **gpu}


def equal_outputs(seconds: float, checkpoint: str | None = None) -> dict:
    "Max |ours - reference| with the deterministic `MelProbe` vocoder: equal outputs mean the speed-up changes no number."
    from reference import reference_stylize

    st, x, (audio, frame) = load(checkpoint), speech(seconds), scene()
    st.vocoder = MelProbe()
    # the stream: what `stylize` returns before its one full-scale gain (the probe's "audio" is mel values, far beyond 1)
    a = torch.cat(list(st.stream(x, audio, frame, STEPS, GUIDANCE, SAMPLER, seed=0, render=RENDER)))
    b = reference_stylize(st, x, audio, frame, STEPS, GUIDANCE, SAMPLER, seed=0)
    return {"audio_seconds": seconds, "max_abs_diff": float((a - b).abs().max()), "scale": float(b.abs().max())}


if __name__ == "__main__":
    import sys

    kind, *args = sys.argv[1:]
    res = run(args[0], float(args[1]), int(args[2]), *args[3:]) if kind == "run" else equal_outputs(float(args[0]))
    print(json.dumps(res))
