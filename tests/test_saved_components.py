"""Every saved codec and vocoder comes back bit-exact from its folder: the same config, the same files, the same
weights and buffers, the same output; a folder that is missing, empty or without its weights is an error naming it."""
import pytest
import torch

from avsoundscape.codec import CODEC_FILES, TINY_VAE
from avsoundscape.core import AvsError
from avsoundscape.vocoder import VOCODER_FILES
from conftest import fixed_mel


def _codec_out(codec, mel):
    return codec.decode(codec.encode(mel))


def _vocoder_out(vocoder, mel):
    torch.manual_seed(1)  # Griffin-Lim starts from random phases
    return vocoder(mel)


CODEC, VOCODER = (CODEC_FILES, _codec_out), (VOCODER_FILES, _vocoder_out)
CASES = {"codec-mel": (*CODEC, "mel"), "codec-tiny": (*CODEC, "tiny"),
         "codec-audioldm": (*CODEC, {"kind": "audioldm", "vae": {**TINY_VAE, "latent_channels": 8}}),
         "vocoder-griffinlim": (*VOCODER, {"kind": "griffinlim", "n_iter": 8}),
         "vocoder-hifigan": (*VOCODER, {"kind": "hifigan", "size": "tiny"})}


@pytest.mark.parametrize("files, run, config", CASES.values(), ids=CASES.keys())
def test_save_load_round_trip_is_bit_exact(tmp_path, files, run, config):
    torch.manual_seed(0)
    module = files.build(config).eval()
    back = files.load(files.save(module, tmp_path / "saved"))
    assert back.config == module.config and not back.training
    state = module.state_dict()
    names = [f"{files.name}.json"] + [f"{files.name}.safetensors"] * bool(state)
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == sorted(names)
    for k, v in state.items():  # buffers included (HiFi-GAN's mean and scale)
        assert torch.equal(back.state_dict()[k], v), k
    mel = fixed_mel(12)
    with torch.no_grad():
        assert torch.equal(run(back, mel), run(module, mel))


@pytest.mark.parametrize("files, config", [(CODEC_FILES, "tiny"), (VOCODER_FILES, {"kind": "hifigan", "size": "tiny"})],
                         ids=["codec", "vocoder"])
def test_load_errors_name_the_folder_and_the_file(tmp_path, files, config):
    name = files.name
    with pytest.raises(AvsError, match=f"nope: {name} folder not found"):
        files.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AvsError, match=f"empty: no {name}.json"):
        files.load(tmp_path / "empty")
    torch.manual_seed(0)
    files.save(files.build(config), tmp_path / "saved")
    (tmp_path / "saved" / f"{name}.safetensors").unlink()
    with pytest.raises(AvsError, match=rf"saved/{name}\.safetensors: missing"):
        files.load(tmp_path / "saved")
