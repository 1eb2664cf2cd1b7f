"""The `vae` and `vocoder` stages through the one training loop: tiny models trained a few steps on tiny
pairs export folders that load; the weightless CPU profile exports without training; `ldm` takes a
trained codec; a resumed GAN run equals an uninterrupted one; the CLI runs both stages and resumes."""
import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from avsoundscape.audio import LogMel
from avsoundscape.codec import build_codec, load_codec
from avsoundscape.core import AvsError
from avsoundscape.pairs import save_shard
from avsoundscape.loading import LatentPairs, _cache_key, cached_features, load_pairs
from avsoundscape.stages import StylizerModel, train_ldm, train_vae, train_vocoder
from avsoundscape.stylize import TINY_MODEL, Stylizer
from avsoundscape.train import list_checkpoints
from avsoundscape.vocoder import load_vocoder
from conftest import speechlike

torch.set_num_threads(1)
BIN = Path(sys.executable).parent
TINY_VAE = {"kind": "tiny", "vae": {"block_out_channels": [8, 16], "norm_num_groups": 4}}
TINY_HIFIGAN = {"kind": "hifigan", "size": "tiny"}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    "Tiny pairs in `load_pairs`' layout: speech-like 1.28 s clips and their log-mels; 8 train, 4 test."
    d = tmp_path_factory.mktemp("pairs")
    g, mel = torch.Generator().manual_seed(0), LogMel()

    def ex(i, split):
        tgt, inp = speechlike(1.28, seed=i), 0.8 * speechlike(1.28, seed=100 + i)
        return dict(id=f"v{i}@0", video_id=f"v{i}", split=split, target_start=0, cond_start=30000,
                    input_wav=inp, target_wav=tgt, cond_wav=0.1 * torch.randn(20480, generator=g),
                    cond_frames=torch.randint(0, 255, (1, 32, 32, 3), dtype=torch.uint8, generator=g),
                    input_mel=mel(inp), target_mel=mel(tgt))

    save_shard(d / "shards" / "train" / "train-00000.safetensors", [ex(i, "train") for i in range(8)])
    save_shard(d / "shards" / "test" / "test-00000.safetensors", [ex(i, "test") for i in range(8, 12)])
    return d


def params(**groups):
    return {"model": {**TINY_MODEL, **groups.pop("model", {})}, **groups}


VAE_GROUP = {"steps": 8, "batch_size": 4, "lr": 3e-3, "warmup_steps": 1, "log_every": 1, "ckpt_every": 4}
VOC_GROUP = {"steps": 6, "batch_size": 2, "lr": 1e-3, "warmup_steps": 1, "log_every": 1, "ckpt_every": 2, "keep_last": 5,
             "discriminator": "tiny", "segment_seconds": 0.16}


def rows(run: Path) -> list[dict]:
    return list(csv.DictReader(open(run / "metrics.csv")))


@pytest.fixture(scope="module")
def trained_vae(pairs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vae")
    train_vae(params(model={"codec": TINY_VAE}, vae=VAE_GROUP), pairs, out, progress=False)
    return out


def test_vae_stage_trains_and_exports(pairs, trained_vae):
    codec = load_codec(trained_vae / "model")
    assert codec.kind == "tiny" and codec.config["vae"]["block_out_channels"] == [8, 16]
    r = rows(trained_vae)
    assert [int(x["step"]) for x in r] == list(range(1, 9)) and {"loss", "rec", "kl", "lr"} <= set(r[0])
    rec = [float(x["rec"]) for x in r]
    assert all(math.isfinite(v) for v in rec)
    assert sum(rec[-3:]) / 3 < 0.9 * rec[0], rec                 # reconstruction improves in 8 steps
    p = load_pairs(pairs, "train")
    with torch.no_grad():                                         # the fitted scale gives unit-variance latents
        z = codec.encode(torch.cat([p["input_mel"], p["target_mel"]]))
    assert abs(float(z.std()) - 1.0) < 1e-3
    assert [c.name for c in list_checkpoints(trained_vae)] == ["step-0000004", "step-0000008"]


def test_vocoder_stage_trains_and_exports(pairs, tmp_path):
    out = tmp_path / "voc"
    folder = train_vocoder(params(model={"vocoder": TINY_HIFIGAN}, vocoder=VOC_GROUP), pairs, out, progress=False)
    voc = load_vocoder(folder)
    assert voc.kind == "hifigan" and voc.config["hifigan"]["upsample_initial_channel"] == 32
    with torch.no_grad():
        assert voc(torch.randn(1, 64, 10) - 5).shape == (1, 1600)
    r = rows(out)
    assert {"d_loss", "d_real", "d_fake", "g_loss", "g_adv", "g_fm", "g_mel", "loss"} <= set(r[0])
    assert all(math.isfinite(float(v)) for x in r for k, v in x.items())
    mel = [float(x["g_mel"]) for x in r]
    assert sum(mel[-2:]) / 2 < mel[0], mel                        # the log-mel L1 falls from the start


def test_resumed_vocoder_run_equals_an_uninterrupted_one(pairs, tmp_path):
    "Both optimizers, schedules, the EMA and the segment RNG come back: a run cut at step 4 ends as the whole one."
    p = params(model={"vocoder": TINY_HIFIGAN}, vocoder={**VOC_GROUP, "steps": 6})
    whole = load_vocoder(train_vocoder(p, pairs, tmp_path / "a", progress=False)).state_dict()
    cut = tmp_path / "b"
    train_vocoder(p, pairs, cut, progress=False)
    shutil.rmtree(cut / "checkpoints" / "step-0000006"); shutil.rmtree(cut / "model")   # as if killed after step 5
    torch.manual_seed(123)
    again = load_vocoder(train_vocoder(p, pairs, cut, resume=True, progress=False)).state_dict()
    for k in whole:
        torch.testing.assert_close(whole[k], again[k], rtol=0, atol=1e-6)
    assert [int(x["step"]) for x in rows(cut)] == list(range(1, 7))


def test_weightless_codec_and_vocoder_export_without_training(pairs, tmp_path):
    p = params()  # TINY_MODEL: the mel codec and Griffin-Lim; no vae / vocoder groups needed
    assert load_codec(train_vae(p, pairs, tmp_path / "vae")).kind == "mel"
    assert load_vocoder(train_vocoder(p, pairs, tmp_path / "voc")).kind == "griffinlim"
    for run in ("vae", "voc"):
        assert (tmp_path / run / "metrics.csv").read_text() == "step,loss\n" and rows(tmp_path / run) == []
        assert (tmp_path / run / "checkpoints").is_dir() and not list_checkpoints(tmp_path / run)


def test_stage_groups_are_checked(pairs, tmp_path):
    with pytest.raises(AvsError, match="no 'vae' group"):
        train_vae(params(model={"codec": TINY_VAE}), pairs, tmp_path / "a")
    with pytest.raises(AvsError, match="unknown key.*segment_secs"):
        train_vocoder(params(model={"vocoder": TINY_HIFIGAN}, vocoder={"steps": 1, "segment_secs": 0.2}), pairs, tmp_path / "b")
    with pytest.raises(AvsError, match="lower segment_seconds"):
        train_vocoder(params(model={"vocoder": TINY_HIFIGAN}, vocoder={**VOC_GROUP, "segment_seconds": 2.0}),
                      pairs, tmp_path / "c", progress=False)


def test_ldm_with_the_trained_codec(pairs, trained_vae, tmp_path):
    p = params(ldm={"steps": 2, "batch_size": 4, "warmup_steps": 1, "ckpt_every": 2}, stylizer={"steps": 2})
    ck = train_ldm(p, pairs, tmp_path / "ldm", progress=False, codec_dir=trained_vae / "model")
    st = Stylizer.from_pretrained(ck, device="cpu")
    assert st.codec.kind == "tiny" and st.denoiser.config.latent_channels == 4
    trained = load_codec(trained_vae / "model").state_dict()
    for k, v in st.codec.state_dict().items():
        torch.testing.assert_close(v, trained[k], rtol=0, atol=0)
    assert st.meta["provenance"]["codec_dir"] == str(trained_vae / "model")
    # same config, other weights: another cache entry
    files = load_pairs(pairs)["files"]
    assert _cache_key(st.codec, files) != _cache_key(build_codec(st.codec.config), files)


def cli(tmp_path, stage, p, *args):
    (tmp_path / f"{stage}.yaml").write_text(yaml.safe_dump(p))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(BIN / "avsoundscape"), "train", stage, "--params", str(tmp_path / f"{stage}.yaml"),
                           "--pairs", str(tmp_path.parent / "pairs"), *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("stage", ["vae", "vocoder"])
def test_cli_trains_vae_and_vocoder_and_resumes(pairs, tmp_path, stage):
    shutil.copytree(pairs, tmp_path.parent / "pairs", dirs_exist_ok=True)
    group = {**(VAE_GROUP if stage == "vae" else VOC_GROUP), "steps": 2, "ckpt_every": 2}
    p = params(model={"codec": TINY_VAE} if stage == "vae" else {"vocoder": TINY_HIFIGAN}, **{stage: group})
    out = tmp_path / "run"
    res = cli(tmp_path, stage, p, "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert f"exported {out / 'model'}" in res.stdout
    load = load_codec if stage == "vae" else load_vocoder
    assert load(out / "model").kind == ("tiny" if stage == "vae" else "hifigan")
    res = cli(tmp_path, stage, p, "--out", str(out))
    assert res.returncode == 1 and "holds checkpoints already" in res.stderr
    p[stage]["steps"] = 4
    res = cli(tmp_path, stage, p, "--out", str(out), "--resume")
    assert res.returncode == 0, res.stderr
    assert [c.name for c in list_checkpoints(out)][-1] == "step-0000004"
    assert [int(x["step"]) for x in rows(out)] == [1, 2, 3, 4]


def test_cli_ldm_only_options_are_refused_in_one_line(tmp_path, capsys):
    from avsoundscape.cli import main

    assert main(["train", "vocoder", "--codec", str(tmp_path), "--init-encoders", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == \
        "avsoundscape train: error: --init-encoders, --codec: only `train ldm` takes them (stage 'vocoder')"


def test_frozen_condition_encoders_run_once_and_train_their_heads(pairs, tmp_path):
    frozen = {"audio_encoder": {**TINY_MODEL["audio_encoder"], "trainable": False},
              "image_encoder": {**TINY_MODEL["image_encoder"], "trainable": False}}
    p = params(model=frozen, ldm={"steps": 2, "batch_size": 4, "warmup_steps": 1, "ckpt_every": 2}, stylizer={"steps": 2})
    ck = train_ldm(p, pairs, tmp_path / "ldm", progress=False)
    cache = sorted(f.name.split("-")[0] for f in (tmp_path / "ldm" / "cache").glob("*.safetensors"))
    assert cache == ["audio", "image", "latents"]
    st = Stylizer.from_pretrained(ck, device="cpu")
    # cached features + heads give exactly what the encoder gives on the raw condition
    data = load_pairs(pairs)
    a = cached_features(st.audio_encoder, data["cond_wav"], data["files"], tmp_path / "c", "audio")
    i = cached_features(st.image_encoder, data["frame"], data["files"], tmp_path / "c", "image")
    ds = LatentPairs(data, data["input_mel"], data["target_mel"], a, i)
    batch = {k: torch.stack([ds[j][k] for j in range(3)]) for k in ds[0]}
    assert "cond_wav" not in batch and "audio_seg" in batch
    model = StylizerModel(st.audio_encoder, st.image_encoder, st.denoiser).eval()
    cached, raw = model.condition(batch), model.condition({"cond_wav": data["cond_wav"][:3], "frame": data["frame"][:3]})
    for c, r in zip(cached, raw):  # audio, then image
        for field in ("tokens", "pooled", "mask"):
            torch.testing.assert_close(getattr(c, field), getattr(r, field), rtol=0, atol=1e-5)
