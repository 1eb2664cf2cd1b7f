"""What the benchmarks run on: SynthScapes (written by the pipeline's `synth` stage, `make repro`). Speech is the dry
speech of its videos laid end to end; the scene is one test video (its audio track and middle frame)."""
from __future__ import annotations

from pathlib import Path

import torch

SYNTH = Path("results/synth/synthscapes")


def need(path: Path, what: str) -> Path:
    if not path.exists():
        raise SystemExit(f"bench: {path} is missing ({what}); run the main job first: make repro")
    return path


def speech(seconds: float) -> torch.Tensor:
    "`seconds` of dry SynthScapes speech (16 kHz mono), the videos' dry tracks one after another."
    from avsoundscape.audio import SAMPLE_RATE, load_audio

    n, parts = int(round(seconds * SAMPLE_RATE)), []
    for d in sorted(need(SYNTH / "truth", "SynthScapes ground truth").iterdir()):
        parts.append(load_audio(d / "dry.wav", allow_silent=True))
        if sum(map(len, parts)) >= n:
            return torch.cat(parts)[:n]
    return torch.cat(parts).repeat(n // sum(map(len, parts)) + 1)[:n]


def scene() -> tuple[torch.Tensor, torch.Tensor]:
    "(audio, frame) of the first test video."
    from avsoundscape.stylize import load_scene

    video = sorted(need(SYNTH / "videos" / "test", "SynthScapes test videos").glob("*.mp4"))[0]
    return load_scene(video)
