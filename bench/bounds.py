"""How far the waveform render could go with perfect scene readings: DSP matching against the same recipe (the input
through a statistical room + Gaussian noise of a mel power spectrum) given the condition scene's true RT60, true DRR or
true ambience power (from SynthScapes' truth files), one at a time and all together, and given the scene's own impulse
response in place of any statistical room (the RT60 column's floor when the room is exact), paired over the same test cases.
It tells which reading is worth learning (a diagnostic for the issue "Win on sound"; no method uses the truth).
Run after `dvc repro rt60`: `python bench/bounds.py` (about 3 minutes on 2 cores)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

SYNTH = Path("results/synth/synthscapes")
KEYS = ("rt60_error_s", "ambient_distance_db", "ambient_level_error_db", "logmel_l1_db", "stoi")


def main() -> dict:
    from avsoundscape.audio import LogMel, load_audio
    from avsoundscape.evaluate import stoi_pesq
    from avsoundscape.baselines import dsp_match
    from avsoundscape.render import StreamingRoom, WaveformRender, background_power, band_noise
    from avsoundscape.rt60 import load_rt60
    from avsoundscape.synthscapes import load_metas
    from avsoundscape.testset import build_cases, mean_ci, score_output

    torch.set_num_threads(2)
    metas, lm = {m["video_id"]: m for m in load_metas(SYNTH)}, LogMel()
    cases = build_cases(SYNTH, "test", per_video=4, seconds=4.0, cond_seconds=2.56, seed=0)
    est = load_rt60("results/rt60/model")
    powers = {}  # the true ambience power of each scene, read once

    def true_power(c):
        if c.scene_video not in powers:
            amb = load_audio(SYNTH / metas[c.scene_video]["truth"]["ambient"], allow_silent=True)
            powers[c.scene_video] = (torch.exp(lm(amb)) ** 2).mean(-1)
        return powers[c.scene_video]

    rirs = {}  # the impulse response of each scene, read once

    def own_room(c):  # the input through the condition scene's own impulse response (the room exactly), measured background
        if c.scene_video not in rirs:
            rirs[c.scene_video] = load_audio(SYNTH / metas[c.scene_video]["truth"]["rir"], allow_silent=True).numpy()
        return StreamingRoom(rirs[c.scene_video]).push(c.input) + band_noise(background_power(c.cond_wav), len(c.input), np.random.default_rng(0))

    # DSP matching's recipe with the readings given (the waveform renderer with the measured-ambience path)
    render = lambda c, rt60, drr_db, power: WaveformRender(rt60, power, "measured", drr_db, seed=0).push(c.input)
    drr = lambda c: metas[c.scene_video]["drr_db"]
    blind = lambda c: float(est.estimate(c.cond_wav))
    methods = {"DSP matching (blind RT60, DRR 0 dB, measured background)": lambda c: dsp_match(c.input, c.cond_wav, est),
               "true RT60": lambda c: render(c, c.rt60, 0.0, background_power(c.cond_wav)),
               "true RT60 + true DRR": lambda c: render(c, c.rt60, drr(c), background_power(c.cond_wav)),
               "true ambience power": lambda c: render(c, blind(c), 0.0, true_power(c)),
               "all three true": lambda c: render(c, c.rt60, drr(c), true_power(c)),
               "the scene's own impulse response": own_room}
    rows = {k: [] for k in methods}
    for c in cases:
        for k, f in methods.items():
            out = f(c)[: len(c.target)]
            rows[k].append({**score_output(c, out), **stoi_pesq(c.target, out)})
    base = rows[next(iter(methods))]
    table = {k: {q: mean_ci([a[q] - b[q] for a, b in zip(r, base)]) for q in KEYS} for k, r in rows.items()}
    means = {k: {q: round(float(np.mean([x[q] for x in r])), 3) for q in KEYS} for k, r in rows.items()}
    print(f"{len(cases)} cases; test scenes' DRR (dB): {sorted({round(drr(c), 1) for c in cases})}")
    print("| readings | " + " | ".join(KEYS) + " |\n|---|" + "---|" * len(KEYS))
    for k in methods:
        print(f"| {k} | " + " | ".join(f"{means[k][q]:.3f} ({table[k][q]['mean']:+.3f} ± {table[k][q]['ci95']:.3f})" for q in KEYS) + " |")
    return {"cases": len(cases), "means": means, "minus_dsp": table}


if __name__ == "__main__":
    res = main()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(res, indent=1) + "\n")
