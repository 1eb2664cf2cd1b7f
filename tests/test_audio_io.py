"""Loading, converting, validating and saving audio: real odd files on disk."""
import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from avsoundscape.audio import SAMPLE_RATE, AudioError, LogMel, load_audio, save_audio
from conftest import ffmpeg, tone


@pytest.mark.parametrize("sr,channels", [(8000, 2), (44100, 1), (48000, 2), (16000, 1)])
def test_odd_rates_and_channels_are_converted_and_logged(tmp_path, caplog, sr, channels):
    path = tmp_path / f"x_{sr}_{channels}.wav"
    sf.write(path, tone(sr, 1.5, channels=channels), sr)
    with caplog.at_level(logging.INFO, logger="avsoundscape"):
        y = load_audio(path)
    assert y.dtype == torch.float32 and y.ndim == 1
    assert abs(len(y) - int(1.5 * SAMPLE_RATE)) <= 1
    # downmix is the mean of the channels: 0.5 and 0.25 peak -> 0.375
    expected_peak = 0.5 if channels == 1 else 0.375
    assert abs(float(y.abs().max()) - expected_peak) < 0.01
    logs = caplog.text
    assert (f"resampled {sr} Hz -> 16000 Hz" in logs) == (sr != SAMPLE_RATE)
    assert ("downmixed 2 channels" in logs) == (channels == 2)
    if sr != SAMPLE_RATE or channels > 1:
        assert str(path) in logs  # the note names the file


def test_resampled_tone_keeps_its_pitch(tmp_path):
    sf.write(tmp_path / "t.wav", tone(44100, 1.0, freq=1000.0), 44100)
    y = load_audio(tmp_path / "t.wav").numpy()
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(y) - 1000.0) < 2.0


@pytest.mark.parametrize("ext,args", [("flac", []), ("ogg", ["-c:a", "libvorbis"]), ("mp3", []),
                                      ("m4a", ["-c:a", "aac"]), ("opus", ["-c:a", "libopus"])])
def test_compressed_formats_load(tmp_path, ext, args):
    sf.write(tmp_path / "src.wav", tone(44100, 2.0, channels=2), 44100)
    ffmpeg("-i", str(tmp_path / "src.wav"), *args, str(tmp_path / f"x.{ext}"))
    y = load_audio(tmp_path / f"x.{ext}")
    assert abs(len(y) / SAMPLE_RATE - 2.0) < 0.1
    # lossy codecs ring at the abrupt onset: judge the level away from the edges (RMS of the 0.375 downmix)
    rms = float(y[4000:-4000].pow(2).mean().sqrt())
    assert abs(rms - 0.375 / np.sqrt(2)) < 0.02, rms


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").touch()
    with pytest.raises(AudioError, match=r"empty\.wav: empty file"):
        load_audio(tmp_path / "empty.wav")


def test_wav_with_no_samples(tmp_path):
    sf.write(tmp_path / "nosamples.wav", np.zeros((0,), np.float32), 16000)
    with pytest.raises(AudioError, match=r"nosamples\.wav: no audio samples"):
        load_audio(tmp_path / "nosamples.wav")


def test_shorter_than_one_frame(tmp_path):
    sf.write(tmp_path / "short.wav", tone(16000, 0.03), 16000)
    with pytest.raises(AudioError, match=r"short\.wav: 480 samples is shorter than one analysis frame"):
        load_audio(tmp_path / "short.wav")


def test_silent(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match=r"silent\.wav: silent"):
        load_audio(tmp_path / "silent.wav")
    assert load_audio(tmp_path / "silent.wav", allow_silent=True).abs().max() == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf(tmp_path, bad):
    x = tone(16000, 1.0)[:, 0]
    x[100] = bad
    sf.write(tmp_path / "bad.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"bad\.wav: contains 1 NaN or inf"):
        load_audio(tmp_path / "bad.wav")


def test_unreadable_and_missing(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"RIFF but not really" * 50)
    with pytest.raises(AudioError, match=r"junk\.wav: .*not a readable audio file"):
        load_audio(tmp_path / "junk.wav")
    (tmp_path / "notes.txt").write_text("hello " * 400)
    with pytest.raises(AudioError, match=r"notes\.txt"):
        load_audio(tmp_path / "notes.txt")
    with pytest.raises(AudioError, match=r"missing\.wav: file not found"):
        load_audio(tmp_path / "missing.wav")


def test_clipped_wav_loads_and_saving_clips_with_a_warning(tmp_path, caplog):
    hot = 3.0 * tone(16000, 1.0)[:, 0]  # peak 1.5
    with caplog.at_level(logging.WARNING, logger="avsoundscape"):
        save_audio(tmp_path / "clipped.wav", hot)
    assert "clipped" in caplog.text and "clipped.wav" in caplog.text
    y = load_audio(tmp_path / "clipped.wav")
    assert float(y.max()) <= 1.0 and float(y.max()) > 0.99  # saturated, as a clipped recording is
    assert (y.abs() > 0.99).float().mean() > 0.2


def test_save_is_atomic_and_refuses_nan(tmp_path):
    save_audio(tmp_path / "ok.wav", tone(16000, 1.0)[:, 0])
    before = (tmp_path / "ok.wav").read_bytes()
    x = tone(16000, 1.0)[:, 0]
    x[5] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        save_audio(tmp_path / "ok.wav", x)
    assert (tmp_path / "ok.wav").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.wav"]


def test_logmel_matches_audioldm_framing():
    wav = torch.randn(2, 16000 * 2)
    m = LogMel()(wav)
    assert m.shape == (2, 64, 200)
    assert torch.isfinite(m).all() and float(m.min()) >= np.log(1e-5) - 1e-6
