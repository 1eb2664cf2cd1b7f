"""Shared fixtures: real odd media files written on the fly (soundfile and the ffmpeg CLI)."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def ffmpeg(*args: str) -> None:
    "Run the ffmpeg CLI quietly; fail the test with its stderr if it fails."
    r = subprocess.run(["ffmpeg", "-v", "error", "-y", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def tone(sr: int, seconds: float, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    "A sine (samples, channels) with a different level per channel."
    t = np.arange(int(sr * seconds)) / sr
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([x * (1.0 - 0.5 * c) for c in range(channels)], axis=1).astype(np.float32)


def speechlike(seconds=2.0, seed=0, sr=16000):
    "Speech-like test audio: harmonics of a gliding f0 under per-syllable formants, pauses, a noise floor."
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 130 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    syl = (t * 4).astype(int)
    f1, f2 = rng.uniform(300, 900, syl.max() + 1)[syl], rng.uniform(900, 2500, syl.max() + 1)[syl]
    x = sum((np.exp(-((h * f0 - f1) / 150) ** 2) + 0.5 * np.exp(-((h * f0 - f2) / 250) ** 2) + 0.05 / h)
            * np.sin(h * phase) * (h * f0 < 7800) for h in range(1, 50))
    env = np.sin(np.pi * (t * 4 % 1)) ** 0.7 * (rng.random(syl.max() + 1) > 0.25)[syl]
    x = x * env + 0.3 * rng.standard_normal(len(t)) * env * (t * 4 % 1 < 0.15)
    x = 0.5 * x / np.abs(x).max() + 1e-3 * rng.standard_normal(len(t))
    return torch.tensor(x, dtype=torch.float32)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    "The project built once as a wheel (pip wheel, no dependencies) for the packaging tests."
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("avsoundscape-*.whl")
    return whl


def fixed_mel(frames=16):
    "A deterministic log-mel (1, 64, frames) with structure on both axes."
    f = torch.arange(64, dtype=torch.float32)[:, None]
    t = torch.arange(frames, dtype=torch.float32)[None]
    return (-6 + 3 * torch.sin(f / 7 + t / 3) - f / 32)[None]


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    "A folder of real test videos: with both streams, video only, audio only, and truncated."
    d = tmp_path_factory.mktemp("media")
    v = ["-f", "lavfi", "-i", "testsrc=size=96x64:rate=25:duration=2"]
    a = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2"]
    enc_v = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
    ffmpeg(*v, *a, "-ac", "2", *enc_v, "-c:a", "aac", "-shortest", str(d / "av.mp4"))
    ffmpeg(*v, *enc_v, str(d / "video_only.mp4"))
    ffmpeg(*a, "-c:a", "aac", str(d / "audio_only.mp4"))
    ffmpeg(*v, *a, "-c:v", "libvpx-vp9", "-b:v", "200k", "-c:a", "libopus", "-shortest", str(d / "av.webm"))
    ffmpeg(*v, *a, *enc_v, "-c:a", "aac", "-shortest", str(d / "av.mkv"))
    data = (d / "av.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    # moov atom first ("faststart"), then cut: the container opens, the streams end early
    ffmpeg(*["-f", "lavfi", "-i", "testsrc=size=96x64:rate=25:duration=8"],
           *["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=8"],
           *enc_v, "-c:a", "aac", "-shortest", "-movflags", "+faststart", str(d / "faststart.mp4"))
    data = (d / "faststart.mp4").read_bytes()
    (d / "truncated_faststart.mp4").write_bytes(data[: len(data) // 3])
    (d / "not_a_video.mp4").write_bytes(b"\x00\x01garbage" * 500)
    return d


@pytest.fixture
def have_ffmpeg():
    assert shutil.which("ffmpeg"), "ffmpeg is installed by `make test` (apt-get); it is required"
