"""Throughput: training examples per second of each stage's model (forward, backward and AdamW step on real pairs,
the default profile's batch sizes; checkpoints and logging not counted), data preparation in seconds of video per
CPU-second, and SynthScapes generation in seconds of video per CPU-second."""
from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from inputs import need

PAIRS = Path("results/prepare/pairs")


def cpu_seconds() -> float:
    "CPU time of this process and its finished children."
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def step_rate(model: torch.nn.Module, loss_fn, batch_size: int, steps: int = 6, warmup: int = 2) -> list[float]:
    "Examples per second of each of `steps` optimizer steps (after `warmup`)."
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-4)
    rates = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()
        if i >= warmup:
            rates.append(batch_size / (time.perf_counter() - t0))
    return rates


def training() -> dict:
    "Examples per second per stage (encoders, vae, vocoder, ldm, rt60), default profile settings."
    from avsoundscape.codec import VAEObjective, build_codec
    from avsoundscape.conditioning import build_conditioner
    from avsoundscape.contrastive import AVContrastive
    from avsoundscape.core import load_params
    from avsoundscape.loading import load_pairs
    from avsoundscape.rt60 import RT60Estimator, rt60_features
    from avsoundscape.stages import StylizerModel
    from avsoundscape.stylize import build_components
    from avsoundscape.vocoder import VocoderGAN, build_discriminator, build_vocoder

    params = load_params("params.yaml")
    torch.manual_seed(0)  # the same initial weights every run
    pairs = load_pairs(need(PAIRS, "prepared pairs"), "train", extra=("target_wav",))
    m = params["model"]
    out = {}
    B = params["encoders"]["batch_size"]
    av = AVContrastive(build_conditioner(m["audio_encoder"]), build_conditioner(m["image_encoder"]))
    out["encoders"] = step_rate(av, lambda: av.loss(pairs["cond_wav"][:B], pairs["frame"][:B])[0], B)
    B = params["ldm"]["batch_size"]
    codec, _, aenc, ienc, den = build_components(m)
    sm = StylizerModel(aenc, ienc, den)
    batch = {"input": codec.encode(pairs["input_mel"][:B]), "target": codec.encode(pairs["target_mel"][:B]),
             "cond_wav": pairs["cond_wav"][:B], "frame": pairs["frame"][:B]}
    out["ldm"] = step_rate(sm, lambda: sm.loss(batch), B)
    B = params["vae"]["batch_size"]
    vae = VAEObjective(build_codec({"kind": "tiny"}))
    out["vae (tiny)"] = step_rate(vae, lambda: vae(pairs["target_mel"][:B])["loss"], B)
    B = params["vocoder"]["batch_size"]
    n = round(params["vocoder"]["segment_seconds"] * 100) * 160
    gan = VocoderGAN(build_vocoder({"kind": "hifigan", "size": "cpu"}), build_discriminator(params["vocoder"]["discriminator"]))
    seg = pairs["target_wav"][:B, :n]
    out["vocoder (hifigan cpu, d+g)"] = step_rate(gan, lambda: gan(seg, "d")["loss"] + gan(seg, "g")["loss"], B)
    B = params["rt60"]["batch_size"]
    est = RT60Estimator()
    feats = rt60_features(pairs["target_wav"][:B].repeat(1, 3))
    out["rt60"] = step_rate(est, lambda: est(feats).abs().mean(), B)
    return out


def data(videos: int = 3, runs: int = 3) -> dict:
    "SynthScapes generation and `prepare` (gated enhancer) on `videos` fresh videos, `runs` times each."
    from avsoundscape.pairs import PairConfig, prepare
    from avsoundscape.synthscapes import generate

    gen, prep = [], []
    for r in range(runs):
        with tempfile.TemporaryDirectory() as d:
            c0 = cpu_seconds()
            s = generate(Path(d) / "synth", videos=videos, seconds=20.0, seed=r, workers=1, progress=False)
            c1 = cpu_seconds()
            gen.append(s["audio_seconds"] / (c1 - c0))
            p = prepare(Path(d) / "synth", Path(d) / "pairs", PairConfig(pairs_per_video=8, enhancer="gated"),
                        workers=1, progress=False)
            prep.append(p["video_seconds"] / (cpu_seconds() - c1))
    return {"synthscapes_generation": gen, "prepare_gated": prep}
