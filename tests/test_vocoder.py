"""Vocoders: Griffin-Lim and HiFi-GAN (AudioLDM's SpeechT5HifiGan format), discriminators, losses, training, save/load."""
import json
import math

import pytest
import torch

from avsoundscape.audio import LogMel
from avsoundscape.core import AvsError
from avsoundscape.vocoder import (GriffinLimVocoder, VocoderGAN, build_discriminator,
                                  build_vocoder, discriminator_loss, feature_matching_loss, generator_loss,
                                  make_stft_loss)
from conftest import fixed_mel, speechlike


def tiny_hifigan(seed=0):
    torch.manual_seed(seed)
    return build_vocoder({"kind": "hifigan", "size": "tiny"})


@pytest.mark.parametrize("frames", [1, 7, 50])
def test_griffinlim_length_is_frames_times_hop(frames):
    voc = build_vocoder({"kind": "griffinlim", "n_iter": 4})
    assert isinstance(voc, GriffinLimVocoder)
    assert voc(torch.randn(2, 64, frames) - 5).shape == (2, frames * 160)
    assert voc(torch.randn(64, frames) - 5).shape == (frames * 160,)


def test_griffinlim_round_trip_is_close_in_log_mel():
    wav = speechlike(1.0, seed=3)
    mel = LogMel()(wav)
    back = build_vocoder("griffinlim")(mel)
    err = float((LogMel()(back) - mel)[:, 2:-2].abs().mean())
    assert back.shape == wav.shape and err < 1.0, err


@pytest.mark.parametrize("frames", [1, 20, 33])
def test_hifigan_shapes_and_input_layout(frames):
    voc = tiny_hifigan().eval()
    mel = torch.randn(2, 64, frames) - 5
    with torch.no_grad():
        wav = voc(mel)
        raw = voc.model(mel.transpose(1, 2))   # SpeechT5HifiGan takes (B, F, 64) and runs a few samples long
        assert wav.shape == (2, frames * 160)
        assert raw.shape[-1] >= frames * 160
        assert torch.equal(wav, raw[:, : frames * 160])
        assert torch.allclose(voc(mel[0]), wav[0], atol=1e-7)   # batching changes the last bits only


def test_hifigan_numeric_slice():
    voc = tiny_hifigan().eval()
    with torch.no_grad():
        wav = voc(fixed_mel(16))
    # expected values computed once with this code on the seeded tiny generator (diffusers-tests convention)
    expected = torch.tensor([0.259074, -0.012306, 2.145190, -2.151786, 1.118183, 1.015622])
    assert torch.allclose(wav[0, 1000:1006] * 1e4, expected, atol=1e-3)


def test_hifigan_configs():
    voc = tiny_hifigan()
    cfg = voc.config
    assert cfg["kind"] == "hifigan" and cfg["hifigan"]["model_in_dim"] == 64
    assert math.prod(cfg["hifigan"]["upsample_rates"]) == 160 and cfg["hifigan"]["normalize_before"] is False
    assert build_vocoder(json.loads(json.dumps(cfg))).config == cfg
    big = build_vocoder({"kind": "hifigan", "size": "audioldm"})
    assert big.config["hifigan"]["upsample_initial_channel"] == 1024
    assert big.config["hifigan"]["upsample_rates"] == [5, 4, 2, 2, 2]
    with torch.no_grad():
        assert big(torch.randn(1, 64, 3) - 5).shape == (1, 480)
    with pytest.raises(AvsError, match="multiplying to 160"):
        build_vocoder({"kind": "hifigan", "hifigan": {"upsample_rates": [4, 4, 4, 4, 2]}})
    with pytest.raises(AvsError, match="model_in_dim 64"):
        build_vocoder({"kind": "hifigan", "hifigan": {"model_in_dim": 80}})
    with pytest.raises(AvsError, match="unexpected keys.*upsample_rate"):
        build_vocoder({"kind": "hifigan", "hifigan": {"upsample_rate": [5, 4, 2, 2, 2]}})
    with pytest.raises(AvsError, match="unknown vocoder kind 'wavenet'"):
        build_vocoder("wavenet")
    with pytest.raises(AvsError, match=r"\(batch, 64, frames\)"):
        voc(torch.zeros(1, 80, 5))


def test_discriminators():
    torch.manual_seed(0)
    disc = build_discriminator("tiny")
    outs = disc(torch.randn(3, 2401))   # not a multiple of any period
    assert len(outs) == 5 + 3
    for logits, feats in outs:
        assert logits.shape[0] == 3 and all(torch.isfinite(f).all() for f in feats)
    assert build_discriminator(json.loads(json.dumps(disc.config))).config == disc.config
    with pytest.raises(AvsError, match="unknown discriminator size"):
        build_discriminator("huge")


def test_losses_at_their_optimum_and_finite():
    ones, zeros = torch.ones(2, 5), torch.zeros(2, 5)
    feats = [torch.randn(2, 4, 7)]
    assert float(discriminator_loss([(ones, feats)], [(zeros, feats)])["total"]) == 0.0
    assert float(discriminator_loss([(zeros, feats)], [(ones, feats)])["total"]) == 2.0
    assert float(feature_matching_loss([(ones, feats)], [(ones, feats)])) == 0.0
    mel = torch.randn(2, 64, 10)
    g = generator_loss([(ones, feats)], [(ones, feats)], mel, mel)
    assert float(g["total"]) == 0.0 and "stft" not in g

    torch.manual_seed(0)
    gen, disc, mel_fn = tiny_hifigan(), build_discriminator("tiny"), LogMel()
    wav = torch.stack([speechlike(0.3, seed=s)[:4000] for s in range(2)])
    mel = mel_fn(wav)
    fake = gen(mel)
    real = wav[:, : fake.shape[-1]]
    d = discriminator_loss(disc(real), disc(fake.detach()))
    g = generator_loss(disc(fake), disc(real), mel_fn(fake), mel, fake, real, make_stft_loss())
    assert set(g) == {"adv", "fm", "mel", "stft", "total"}
    assert all(torch.isfinite(v) for v in [*d.values(), *g.values()])
    g["total"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gen.parameters())


def test_training_steps_reduce_the_mel_l1_on_a_fixed_batch():
    torch.manual_seed(0)
    gan = VocoderGAN(tiny_hifigan(), build_discriminator("tiny"), make_stft_loss())
    gen, disc, mel_fn = gan.vocoder, gan.disc, LogMel()
    opts = {"d": torch.optim.AdamW(disc.parameters(), 2e-3, betas=(0.8, 0.99)),
            "g": torch.optim.AdamW(gen.parameters(), 2e-3, betas=(0.8, 0.99))}
    wav = torch.stack([speechlike(0.5, seed=s)[2000:2000 + 4800] for s in range(2)])
    mel = mel_fn(wav)

    def mel_l1():
        gen.eval()
        with torch.no_grad():
            return float((mel_fn(gen(mel)) - mel).abs().mean())

    before = mel_l1()
    hist = []
    for _ in range(5):  # the phases stage `vocoder` steps through train.Trainer (an optimizer each), stepped bare
        gan.train()
        for phase, opt in opts.items():
            out = gan(wav, phase)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            hist.append({f"{phase}_{k}": float(v) for k, v in out.items()})
    after = mel_l1()
    assert all(math.isfinite(v) for h in hist for v in h.values())
    assert set(hist[0]) | set(hist[1]) == {"d_loss", "d_real", "d_fake", "g_loss", "g_adv", "g_fm", "g_mel", "g_stft"}
    assert after < 0.6 * before, (before, after, [h.get("g_mel") for h in hist])
    assert gen(mel).shape == wav.shape
