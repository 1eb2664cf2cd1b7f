"""Ordinary and odd inputs through `avsoundscape stylize`, as a user gives them: each works (with a one-line note
where something was converted) or fails with one line naming the file; and a long input in bounded memory."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from avsoundscape.audio import SAMPLE_RATE
from conftest import ffmpeg, speechlike

EXE = Path(sys.executable).parent / "avsoundscape"


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    from avsoundscape.stylize import tiny_stylizer

    return tiny_stylizer().save_pretrained(tmp_path_factory.mktemp("odd") / "ck")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("odd_files")
    sf.write(d / "speech.wav", speechlike(2.0).numpy(), SAMPLE_RATE)
    sf.write(d / "short.wav", speechlike(0.3).numpy(), SAMPLE_RATE)
    sf.write(d / "scene_short.wav", speechlike(0.4, seed=1).numpy(), SAMPLE_RATE)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=2", "-ac", "2", "-c:a", "aac",
           str(d / "stereo48k.m4a"))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8)).save(d / "big.jpg", quality=80)
    Image.fromarray(rng.integers(0, 255, (48, 64), dtype=np.uint8), mode="L").save(d / "gray.png")
    data = (d / "big.jpg").read_bytes()
    (d / "corrupt.jpg").write_bytes(data[:600])  # the header and a sliver of the picture
    return d


def stylize(ck, tmp_path, *args):
    out = tmp_path / "out.wav"
    r = subprocess.run([str(EXE), "stylize", *map(str, args), "--checkpoint", str(ck), "-o", str(out), "--steps", "1"],
                       capture_output=True, text=True, timeout=600)
    return r, out


def notes(r) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.strip()]


def test_48k_stereo_m4a_is_converted_with_a_note(ck, files, tmp_path):
    r, out = stylize(ck, tmp_path, files / "stereo48k.m4a", "--scene-audio", files / "scene_short.wav")
    assert r.returncode == 0, r.stderr
    said = "\n".join(notes(r))
    assert "stereo48k.m4a" in said and "48000 Hz" in said and "2 channels" in said, said
    from avsoundscape.audio import load_audio

    y, sr = sf.read(out)
    # as long as the decoded input (AAC adds its encoder delay to the 2 s), at 16 kHz mono
    assert sr == SAMPLE_RATE and y.ndim == 1 and len(y) == len(load_audio(files / "stereo48k.m4a"))


def test_a_0_3_s_input_comes_back_0_3_s(ck, files, tmp_path):
    r, out = stylize(ck, tmp_path, files / "short.wav", "--scene-image", files / "gray.png")
    assert r.returncode == 0, r.stderr
    y, _ = sf.read(out)
    assert len(y) == len(sf.read(files / "short.wav")[0]) and np.abs(y).max() > 0  # the speech came through


def test_a_scene_shorter_than_the_window_is_looped_with_a_note(ck, files, tmp_path):
    r, out = stylize(ck, tmp_path, files / "speech.wav", "--scene-audio", files / "scene_short.wav")
    assert r.returncode == 0, r.stderr
    said = "\n".join(notes(r))
    assert "scene_short.wav" in said and "looped" in said, said
    assert np.isfinite(sf.read(out)[0]).all()


def test_a_4000x3000_scene_image(ck, files, tmp_path):
    r, out = stylize(ck, tmp_path, files / "speech.wav", "--scene-image", files / "big.jpg")
    assert r.returncode == 0, r.stderr
    assert len(sf.read(out)[0]) == 2 * SAMPLE_RATE


def test_a_grayscale_png_is_converted_with_a_note(ck, files, tmp_path):
    r, _ = stylize(ck, tmp_path, files / "speech.wav", "--scene-image", files / "gray.png")
    assert r.returncode == 0, r.stderr
    said = "\n".join(notes(r))
    assert "gray.png" in said and "RGB" in said, said


def test_a_corrupt_jpeg_fails_with_one_line_naming_it(ck, files, tmp_path):
    r, out = stylize(ck, tmp_path, files / "speech.wav", "--scene-image", files / "corrupt.jpg")
    assert r.returncode == 1 and not out.exists()
    lines = notes(r)
    assert len(lines) == 1 and "corrupt.jpg" in lines[0] and "Traceback" not in r.stderr, r.stderr


PEAK = """
import json, sys, torch
from avsoundscape.stylize import Stylizer
torch.set_num_threads(1)
seconds, ck, out = float(sys.argv[1]), sys.argv[2], sys.argv[3]
st = Stylizer.from_pretrained(ck, device="cpu")
t = torch.arange(int(seconds * 16000)) / 16000
x = 0.3 * torch.sin(2 * torch.pi * 220 * t) * (torch.sin(2 * torch.pi * 2 * t) > 0)
scene = 0.1 * torch.randn(3 * 16000, generator=torch.Generator().manual_seed(0))
st.stylize_file(x, out, scene, None, steps=1, seed=0)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"peak_mb": int(hwm.split()[1]) / 1024}))
"""


def test_ten_minutes_stylize_in_bounded_memory(ck, tmp_path):
    "10 minutes of input, streamed to the output file: the peak resident memory stays within a bound of a 10 s run's."
    peak = {}
    for seconds in (10.0, 600.0):
        r = subprocess.run([sys.executable, "-c", PEAK, str(seconds), str(ck), str(tmp_path / f"{seconds}.wav")],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        peak[seconds] = json.loads(r.stdout.splitlines()[-1])["peak_mb"]
    # the 10-minute input itself is 38 MB (float32); holding the whole output or its spectrogram would add hundreds
    assert peak[600.0] - peak[10.0] < 250, peak


def test_a_bad_sampling_setting_is_one_clear_line(ck, files, tmp_path):
    for flag, value, said in (("--sampler", "euler", "sampler 'euler': use one of dpmsolver++, ddim"),
                              ("--render", "vocoder", "render 'vocoder': use one of latent, waveform, waveform-model")):
        r, _ = stylize(ck, tmp_path, files / "short.wav", "--scene-audio", files / "scene_short.wav", flag, value)
        assert r.returncode == 1 and said in r.stderr and "Traceback" not in r.stderr, r.stderr
