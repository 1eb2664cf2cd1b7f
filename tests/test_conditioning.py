"""Condition encoders and the contrastive stage: shapes, numeric slices, determinism, real-format checkpoints on disk, learning."""
import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from avsoundscape.audio import SAMPLE_RATE, AudioError
from avsoundscape.conditioning import (CLAP_SMALL, CLIP_SMALL, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD, CondOutput, build_conditioner, freeze, load_clap_audio_weights,
                                       load_conditioner, load_open_clip_weights, save_conditioner)
from avsoundscape.contrastive import AVContrastive, retrieval_accuracy, toy_av_batch
from avsoundscape.core import AvsError


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models: with 2 OpenMP threads on a busy 2-core machine, steps were measured 30-60x slower than with 1.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def audio_in(seconds=1.28, batch=2, seed=123):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, int(seconds * SAMPLE_RATE), generator=g) * 0.1


def image_in(h=48, w=64, batch=2, seed=123):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, h, w, 3), generator=g, dtype=torch.uint8)


TINY = {
    "conv_audio": {"kind": "conv_audio", "d_model": 16, "channels": [4, 8, 8, 16]},
    "clap": {"kind": "clap", "d_model": 16, **copy.deepcopy(CLAP_SMALL)},
    "conv_image": {"kind": "conv_image", "d_model": 16, "channels": [4, 8, 8, 16], "image_size": 32},
    "clip": {"kind": "clip", "d_model": 16, **copy.deepcopy(CLIP_SMALL)},
}
INPUT = {"conv_audio": audio_in, "clap": audio_in, "conv_image": image_in, "clip": image_in}

_cache = {}


def tiny(kind, **kw):
    "A seeded tiny encoder in eval mode (cached when built without overrides: building CLAP costs a second)."
    if kw or kind not in _cache:
        torch.manual_seed(0)
        enc = build_conditioner({**TINY[kind], **kw}).eval()
        if kw:
            return enc
        _cache[kind] = enc
    return _cache[kind]


def test_importing_conditioning_is_light():
    # open_clip and laion_clap cost 10+ s to import: only the encoders that use them pay, when built
    code = ("import sys, avsoundscape.conditioning, avsoundscape.contrastive; "
            "bad = [m for m in ('open_clip', 'laion_clap', 'transformers') if m in sys.modules]; assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("kind", ["conv_audio", "clap"])
@pytest.mark.parametrize("seconds", [0.5, 1.28, 5.0])
def test_audio_shapes(kind, seconds):
    out = tiny(kind)(audio_in(seconds, batch=3))
    assert isinstance(out, CondOutput)
    assert out.tokens.shape == (3, 4, 16) and out.pooled.shape == (3, 16) and out.mask.shape == (3, 4)
    assert out.mask.dtype == torch.bool and bool(out.mask.all())
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.pooled).all()


@pytest.mark.parametrize("kind", ["conv_image", "clip"])
@pytest.mark.parametrize("hw", [(32, 32), (90, 160), (240, 180), (17, 23)])
def test_image_shapes_and_uint8_equals_float(kind, hw):
    enc = tiny(kind)
    frames = image_in(*hw, batch=3)
    a, b = enc(frames), enc(frames.permute(0, 3, 1, 2).float() / 255.0)
    assert a.tokens.shape == (3, 4, 16) and a.pooled.shape == (3, 16)
    torch.testing.assert_close(a.tokens, b.tokens, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.pooled, b.pooled, rtol=0, atol=1e-6)


def test_other_token_counts_and_widths():
    assert tiny("conv_image", n_tokens=6, d_model=8)(image_in()).tokens.shape == (2, 6, 8)
    assert tiny("clip", n_tokens=1, d_model=24)(image_in()).tokens.shape == (2, 1, 24)
    assert tiny("conv_audio", n_tokens=7)(audio_in(0.5)).tokens.shape == (2, 7, 16)


# Numeric slices of the seeded tiny encoders: computed once (torch 2.14 CPU, laion-clap 1.1.7,
# open-clip-torch 3.3) and hard-coded with a tolerance, as diffusers' pipeline tests do. A change
# here means the architecture, the initialisation or the preprocessing changed.
SLICES = {
    "conv_audio": ([-0.1317, 0.0132, 0.1274, 0.0821, -0.0791, 0.1179], [0.0281, 0.0602, 0.0739, -0.1215]),
    "clap": ([0.0027, 0.0805, -0.0572, 0.0042, 0.0507, -0.0584], [0.0569, 0.1387, 0.1019, -0.0117]),
    "conv_image": ([-0.0649, 0.0124, -0.1871, 0.2257, -0.0922, 0.1037], [-0.1284, -0.0223, -0.0403, -0.0031]),
    "clip": ([0.0292, 0.0227, 0.1538, -0.0509, -0.0141, -0.0644], [0.2378, -0.0523, 0.1331, 0.2143]),
}


@pytest.mark.parametrize("kind", list(TINY))
def test_numeric_slice(kind):
    with torch.no_grad():
        out = tiny(kind)(INPUT[kind]())
    pooled, tokens = SLICES[kind]
    torch.testing.assert_close(out.pooled[0, :6], torch.tensor(pooled), rtol=0, atol=1e-3)
    torch.testing.assert_close(out.tokens[1, -1, :4], torch.tensor(tokens), rtol=0, atol=1e-3)


@pytest.mark.parametrize("kind", list(TINY))
def test_eval_is_deterministic_and_config_rebuilds(kind):
    enc = tiny(kind)
    x = audio_in(5.0) if kind in ("conv_audio", "clap") else image_in()  # 5 s: longer than CLAP's window, cropped
    with torch.no_grad():
        a, b = enc(x), enc(x)
        torch.manual_seed(0)
        c = build_conditioner(enc.config).eval()(x)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.pooled, b.pooled)
    assert torch.equal(a.pooled, c.pooled)


def test_clap_fits_clips_as_laion_clap_does():
    import torchaudio
    enc = tiny("clap")
    L = enc.clip_samples  # 60960 samples at 48 kHz
    short = audio_in(0.5, batch=1)  # 8000 samples -> 24000 at 48 kHz: repeated twice, then 12960 zeros ("repeatpad")
    x48 = torchaudio.functional.resample(short, SAMPLE_RATE, 48000)[0]
    got = enc.prepare(short)[0]
    assert got.shape == (L,)
    torch.testing.assert_close(got[:24000], x48, rtol=0, atol=0)
    torch.testing.assert_close(got[24000:48000], x48, rtol=0, atol=0)
    assert torch.equal(got[48000:], torch.zeros(L - 48000))
    long = audio_in(5.0, batch=1)  # 240000 samples at 48 kHz: the centre in eval mode, a random crop in training
    y48 = torchaudio.functional.resample(long, SAMPLE_RATE, 48000)[0]
    start = (240000 - L) // 2
    torch.testing.assert_close(enc.prepare(long)[0], y48[start:start + L], rtol=0, atol=0)
    enc.train()
    try:
        crops = {tuple(enc.prepare(long)[0, :3].tolist()) for _ in range(4)}
    finally:
        enc.eval()
    assert len(crops) > 1


def test_frozen_backbone_gets_no_gradient_but_heads_do():
    enc = build_conditioner({**TINY["clap"], "trainable": False}).train()
    assert not enc.audio_branch.training and not enc.audio_projection.training
    enc(audio_in()).pooled.sum().backward()
    assert all(p.grad is None for p in enc.audio_branch.parameters())
    assert enc.pooled_head.weight.grad is not None
    assert freeze(enc) is enc and not any(p.requires_grad for p in enc.parameters()) and not enc.training


def test_bad_inputs_and_settings():
    with pytest.raises(AudioError, match="shorter than one analysis frame"):
        tiny("conv_audio")(torch.zeros(2, 500))
    with pytest.raises(AvsError, match="expected float waveforms shaped"):
        tiny("clap")(torch.zeros(2, 1, 16000))
    with pytest.raises(AvsError, match=r"uint8 frames must be \(batch, height, width, 3\)"):
        tiny("clip")(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(AvsError, match="unknown setting"):
        build_conditioner({"kind": "clip", "layers": 2})
    with pytest.raises(AvsError, match="not tiled by window_size"):
        build_conditioner({**TINY["clap"], "htsat": {**CLAP_SMALL["htsat"], "window_size": 3}})
    with pytest.raises(AvsError, match="gives 201 frames"):
        build_conditioner({**TINY["clap"], "audio_cfg": {**CLAP_SMALL["audio_cfg"], "clip_samples": 96000}})
    with pytest.raises(AvsError, match="no such laion-clap model config"):
        build_conditioner({"kind": "clap", "model": "HTSAT-huge"})


def test_clip_normalisation_constants_are_open_clips():
    import open_clip.constants as oc
    assert OPENAI_DATASET_MEAN == oc.OPENAI_DATASET_MEAN and OPENAI_DATASET_STD == oc.OPENAI_DATASET_STD


# ---- real checkpoint formats, written by the real classes ----

def real_laion_clap():
    "A real laion_clap `CLAP` (HTSAT-tiny audio tower, a small 'transformer' text tower: it builds offline)."
    from avsoundscape.conditioning import _laion_clap, clap_audio_cfg
    _, model, _ = _laion_clap()
    acfg = clap_audio_cfg({"model": "HTSAT-tiny", "audio_cfg": {}})
    embed = acfg.pop("_embed_dim")
    text = model.CLAPTextCfg(context_length=8, vocab_size=50, width=16, heads=2, layers=1, model_type="transformer")
    torch.manual_seed(5)
    return model.CLAP(embed, audio_cfg=model.CLAPAudioCfp(**acfg), text_cfg=text).eval()


def test_laion_clap_checkpoint_round_trip(tmp_path):
    clap = real_laion_clap()
    sd = {f"module.{k}": v for k, v in clap.state_dict().items()}
    assert any(k.startswith("module.text_branch.") for k in sd) and any(k.startswith("module.audio_transform.") for k in sd)
    torch.save({"epoch": 45, "state_dict": sd}, tmp_path / "630k-audioset-best.pt")  # LAION's layout
    torch.manual_seed(9)
    enc = build_conditioner({"kind": "clap", "d_model": 16}).eval()  # HTSAT-tiny, LAION's audio config
    load_clap_audio_weights(enc, tmp_path / "630k-audioset-best.pt")
    wav = audio_in(1.0, batch=1)
    with torch.no_grad():
        ours = enc.features(wav)[1]
        theirs = clap.get_audio_embedding([{"waveform": enc.prepare(wav)[0]}])  # LAION-CLAP's own path
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_open_clip_checkpoint_round_trip(tmp_path):
    import open_clip
    from safetensors.torch import save_file
    torch.manual_seed(3)
    full = open_clip.create_model("ViT-B-32", pretrained=None, embed_dim=CLIP_SMALL["embed_dim"],
                                  vision_cfg={**open_clip.get_model_config("ViT-B-32")["vision_cfg"], **CLIP_SMALL["vision_cfg"]},
                                  text_cfg={"context_length": 8, "vocab_size": 50, "width": 16, "heads": 2, "layers": 1}).eval()
    sd = full.state_dict()
    assert any(k.startswith("transformer.") for k in sd)  # a text tower rides along
    torch.save(sd, tmp_path / "plain.pt")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pt")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "open_clip_model.safetensors"))
    frames = image_in(64, 64)
    x = (frames.permute(0, 3, 1, 2).float() / 255 - torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        want = torch.nn.functional.normalize(full.encode_image(x), dim=-1)
    for name in ("plain.pt", "ddp.pt", "open_clip_model.safetensors"):
        enc = tiny("clip", trainable=False)
        load_open_clip_weights(enc, tmp_path / name)
        with torch.no_grad():
            torch.testing.assert_close(enc.features(frames)[1], want, rtol=0, atol=1e-5)


def test_loaders_fail_clearly_on_wrong_files(tmp_path):
    clap, clip = tiny("clap"), tiny("clip")
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 50)
    with pytest.raises(AvsError, match=r"garbage\.pt: cannot read as a LAION-CLAP checkpoint"):
        load_clap_audio_weights(clap, tmp_path / "garbage.pt")
    with pytest.raises(AvsError, match=r"missing\.pt: open_clip checkpoint not found"):
        load_open_clip_weights(clip, tmp_path / "missing.pt")
    # each loader given the other's checkpoint
    torch.save({"state_dict": {f"module.{k}": v for k, v in clap.state_dict().items()}}, tmp_path / "clap.pt")
    torch.save({f"visual.{k}": v for k, v in clip.visual.state_dict().items()}, tmp_path / "clip.pt")
    with pytest.raises(AvsError, match=r"clip\.pt: no audio_branch\.\* keys"):
        load_clap_audio_weights(clap, tmp_path / "clip.pt")
    with pytest.raises(AvsError, match=r"clap\.pt: no visual\.\* keys"):
        load_open_clip_weights(clip, tmp_path / "clap.pt")
    # the right format but another size: shapes are named
    with pytest.raises(AvsError, match="shape mismatch"):
        load_open_clip_weights(tiny("clip", vision_cfg={**CLIP_SMALL["vision_cfg"], "width": 32}), tmp_path / "clip.pt")
    # a key missing
    sd = torch.load(tmp_path / "clip.pt")
    sd.pop("visual.proj")
    torch.save(sd, tmp_path / "clip_missing.pt")
    with pytest.raises(AvsError, match=r"1 missing key\(s\): visual\.proj"):
        load_open_clip_weights(clip, tmp_path / "clip_missing.pt")
    # a pickle with Python objects is refused unless trusted
    with open(tmp_path / "objects.pt", "wb") as f:
        torch.save({"state_dict": {f"visual.{k}": v for k, v in clip.visual.state_dict().items()},
                    "rng": np.random.default_rng(0)}, f)
    with pytest.raises(AvsError, match="pass trusted=True"):
        load_open_clip_weights(clip, tmp_path / "objects.pt")
    load_open_clip_weights(clip, tmp_path / "objects.pt", trusted=True)
    with pytest.raises(AvsError, match="needs a 'clap' encoder"):
        load_clap_audio_weights(clip, tmp_path / "clap.pt")


def test_save_and_load_conditioner(tmp_path):
    for kind, name in (("clap", "audio"), ("conv_image", "image")):
        enc = tiny(kind)
        save_conditioner(enc, tmp_path, name)
        back = load_conditioner(tmp_path, name)
        assert back.config == enc.config
        x = INPUT[kind]()
        with torch.no_grad():
            assert torch.equal(back(x).tokens, enc(x).tokens)
    with pytest.raises(AvsError, match="no video.json"):
        load_conditioner(tmp_path, "video")


# ---- the contrastive stage ----

def test_contrastive_loss_and_accuracy():
    model = AVContrastive(tiny("conv_audio", d_model=16), tiny("conv_image", d_model=16))
    loss, logits = model.loss(*toy_av_batch(8)[:2])
    assert logits.shape == (8, 8) and abs(loss.item() - np.log(8)) < 1.0
    assert retrieval_accuracy(torch.eye(5) * 10) == 1.0
    with pytest.raises(AvsError, match="d_model differ"):
        AVContrastive(tiny("conv_audio"), tiny("conv_image", d_model=8))
    with pytest.raises(AvsError, match="1 audio clips but 2 frames"):
        model.loss(audio_in(batch=1), image_in(batch=2))


def _step(model, opt, wav, frames) -> float:
    "One bare optimizer step on `model.loss` (stage `encoders` steps it through train.Trainer); the loss."
    model.train()
    loss, _ = model.loss(wav, frames)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss)


def test_contrastive_training_beats_chance():
    torch.manual_seed(0)
    audio = build_conditioner({"kind": "conv_audio", "d_model": 32, "channels": [8, 16, 32, 32]})
    image = build_conditioner({"kind": "conv_image", "d_model": 32, "channels": [8, 16, 32, 32], "image_size": 32})
    model = AVContrastive(audio, image)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def held_out():
        model.eval()
        with torch.no_grad():
            res = [model.loss(*toy_av_batch(8, seed=s)[:2]) for s in range(500, 504)]
        return np.mean([float(l) for l, _ in res]), np.mean([retrieval_accuracy(g) for _, g in res])

    loss0, acc0 = held_out()
    for step in range(20):
        _step(model, opt, *toy_av_batch(8, seed=step)[:2])
    loss1, acc1 = held_out()
    assert acc0 < 0.4  # chance is 1/8
    assert acc1 >= 0.6 and loss1 < loss0 - 0.5, (acc0, acc1, loss0, loss1)


def test_contrastive_loss_trains_clap_and_clip_backbones():
    torch.manual_seed(0)
    model = AVContrastive(build_conditioner({**TINY["clap"], "trainable": True}),
                          build_conditioner({**TINY["clip"], "trainable": True}))
    before = model.audio.audio_branch.patch_embed.proj.weight.clone(), model.image.visual.conv1.weight.clone()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    assert np.isfinite(_step(model, opt, *toy_av_batch(4, seconds=1.0)[:2]))
    assert 0 < float(1 / model.logit_scale.exp()) < 1  # the temperature
    assert not torch.equal(before[0], model.audio.audio_branch.patch_embed.proj.weight)
    assert not torch.equal(before[1], model.image.visual.conv1.weight)
