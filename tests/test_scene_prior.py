"""The parts that make the default model read the room from the condition: scene augmentation in the ldm stage's
data (seeded, resumable), the room reader trained by the encoders stage, and the acoustic prior in a Stylizer."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avsoundscape.audio import LogMel
from avsoundscape.augment import SceneAugment
from avsoundscape.conditioning import load_conditioner
from avsoundscape.core import AvsError
from avsoundscape.room import RT60Estimator
from avsoundscape.loading import LatentPairs, load_pairs
from avsoundscape.stages import train_encoders, train_ldm
from avsoundscape.stylize import TINY_MODEL, Stylizer, build_components
from conftest import speechlike
from test_train_stages import pairs, params  # noqa: F401  (the tiny pairs fixture)

torch.set_num_threads(1)
ROOM_MODEL = {"audio_encoder": {**TINY_MODEL["audio_encoder"], "room": True},
              "denoiser": {**TINY_MODEL["denoiser"], "prior": {"room": True}}}
LDM = {"steps": 4, "batch_size": 4, "warmup_steps": 1, "ckpt_every": 2, "keep_last": 5,
       "augment": {"p_reverb": 1.0, "rt60": [0.3, 1.5]}}


def test_augmented_examples_ring_target_and_condition_not_input(pairs):
    data = load_pairs(pairs, extra=("target_wav",))
    codec, mel = build_components(TINY_MODEL)[0], LogMel()
    enc = lambda w: codec.encode(mel(w[None]))[0]
    inp, tgt = codec.encode(data["input_mel"]), codec.encode(data["target_mel"])
    plain = LatentPairs(data, inp, tgt)
    ds = LatentPairs(data, inp, tgt, augment=SceneAugment(p_reverb=1.0, rt60=(1.0, 1.0)), encode=enc)
    torch.manual_seed(0); a = ds[3]
    torch.manual_seed(0); b = ds[3]
    torch.manual_seed(1); c = ds[3]
    assert torch.equal(a["target"], b["target"]) and torch.equal(a["cond_wav"], b["cond_wav"])    # seeded
    assert not torch.equal(a["target"], c["target"])                                              # another room
    assert torch.equal(a["input"], plain[3]["input"])                                             # the input never rings
    assert not torch.allclose(a["cond_wav"], plain[3]["cond_wav"])
    torch.testing.assert_close(enc(data["target_wav"][3]), plain[3]["target"], rtol=0, atol=1e-5)  # encode = the cache's
    # a second-long ring lifts the target between and after words: its quietest frames rise
    assert a["target"].quantile(0.1) > plain[3]["target"].quantile(0.1)
    with pytest.raises(AvsError, match="uncached"):
        LatentPairs(data, inp, tgt, audio_feats=(torch.zeros(1), torch.zeros(1)), augment=SceneAugment(p_reverb=1.0), encode=enc)


def test_resumed_augmented_ldm_run_equals_an_uninterrupted_one(pairs, tmp_path):
    "The rooms come from the global RNG, which checkpoints keep: a run cut at step 2 ends as the whole one."
    p = params(model=ROOM_MODEL, ldm=LDM, stylizer={"steps": 2})
    torch.manual_seed(0)
    whole = Stylizer.from_pretrained(train_ldm(p, pairs, tmp_path / "a", progress=False), device="cpu").denoiser.state_dict()
    cut = tmp_path / "b"
    torch.manual_seed(0)
    train_ldm(p, pairs, cut, progress=False)
    shutil.rmtree(cut / "checkpoints" / "step-0000004"); shutil.rmtree(cut / "model")   # as if killed after step 3
    torch.manual_seed(123)
    again = Stylizer.from_pretrained(train_ldm(p, pairs, cut, resume=True, progress=False), device="cpu").denoiser.state_dict()
    for k in whole:
        torch.testing.assert_close(whole[k], again[k], rtol=0, atol=1e-6)
    assert any(k.startswith("prior.") for k in whole) and "null_room" in whole


def test_encoders_stage_trains_the_room_reader_by_simulation(pairs, tmp_path):
    p = params(model=ROOM_MODEL, encoders={"steps": 2, "batch_size": 4, "warmup_steps": 1, "ckpt_every": 2,
                                           "room": {"examples": 96, "steps": 40}})
    folder = train_encoders(p, pairs, tmp_path / "enc", progress=False)
    assert (tmp_path / "enc" / "room" / "metrics.csv").is_file()
    audio = load_conditioner(folder / "audio_encoder")
    fresh = RT60Estimator().state_dict()
    assert any(not torch.equal(v, fresh[k]) for k, v in audio.room_reader.state_dict().items())
    wav = torch.stack([speechlike(1.28, seed=s) for s in range(2)])
    out = audio(wav)
    assert out.room.shape == (2,) and torch.isfinite(out.room).all() and not out.room.requires_grad


def test_the_prior_reads_the_room_and_the_scene_changes_the_output():
    torch.manual_seed(0)
    model = {**TINY_MODEL, **ROOM_MODEL}
    st = Stylizer(*build_components(model), config={"steps": 2, "guidance": 1.0}, device="cpu")
    speech = speechlike(2.0, seed=1)
    dry, wet = speechlike(1.5, seed=2), speechlike(1.5, seed=3)
    wet = torch.from_numpy(np.convolve(wet.numpy(), np.exp(-np.arange(8000) / 1500.0) * np.random.default_rng(0).standard_normal(8000))[:len(wet)]).float()
    cd, cw = st.encode_condition(dry), st.encode_condition(wet)
    assert cd.pooled.shape == (1, model["denoiser"]["cond_dim"]) and cd.room.shape == (1,)  # the room has its own field
    assert cd.room[0] != cw.room[0]
    with torch.inference_mode():                                          # the prior rings with the room it was given
        t60, _, _ = st.denoiser.prior.scene(cw.pooled, cw.room)
    torch.testing.assert_close(t60, cw.room[:, None].exp().expand_as(t60))
    a, b, none = (st.stylize(speech, s, seed=0) for s in (dry, wet, None))
    assert a.shape == speech.shape and torch.isfinite(none).all() and not torch.equal(a, b)
    with pytest.raises(AvsError, match="room reader"):
        build_components({**TINY_MODEL, "denoiser": ROOM_MODEL["denoiser"]})
    with pytest.raises(AvsError, match="mel codec"):
        build_components({**model, "codec": {"kind": "tiny", "vae": {"block_out_channels": [8, 16], "norm_num_groups": 4}}})
