"""Every saved codec and vocoder comes back bit-exact from its folder: the same config, the same files, the same
weights and buffers, the same output."""
import pytest
import torch

from avsoundscape.codec import CODEC_JSON, CODEC_WEIGHTS, TINY_VAE, build_codec, load_codec, save_codec
from avsoundscape.vocoder import VOCODER_JSON, VOCODER_WEIGHTS, build_vocoder, load_vocoder, save_vocoder
from conftest import fixed_mel


def _codec_out(codec, mel):
    return codec.decode(codec.encode(mel))


def _vocoder_out(vocoder, mel):
    torch.manual_seed(1)  # Griffin-Lim starts from random phases
    return vocoder(mel)


CODEC = (build_codec, save_codec, load_codec, (CODEC_JSON, CODEC_WEIGHTS), _codec_out)
VOCODER = (build_vocoder, save_vocoder, load_vocoder, (VOCODER_JSON, VOCODER_WEIGHTS), _vocoder_out)
CASES = {"codec-mel": (*CODEC, "mel"), "codec-tiny": (*CODEC, "tiny"),
         "codec-audioldm": (*CODEC, {"kind": "audioldm", "vae": {**TINY_VAE, "latent_channels": 8}}),
         "vocoder-griffinlim": (*VOCODER, {"kind": "griffinlim", "n_iter": 8}),
         "vocoder-hifigan": (*VOCODER, {"kind": "hifigan", "size": "tiny"})}


@pytest.mark.parametrize("build, save, load, names, run, config", CASES.values(), ids=CASES.keys())
def test_save_load_round_trip_is_bit_exact(tmp_path, build, save, load, names, run, config):
    torch.manual_seed(0)
    module = build(config).eval()
    back = load(save(module, tmp_path / "saved"))
    assert back.config == module.config and not back.training
    state = module.state_dict()
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == sorted(names if state else names[:1])
    for k, v in state.items():  # buffers included (HiFi-GAN's mean and scale)
        assert torch.equal(back.state_dict()[k], v), k
    mel = fixed_mel(12)
    with torch.no_grad():
        assert torch.equal(run(back, mel), run(module, mel))
