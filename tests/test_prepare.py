"""Self-supervised pairs from videos: sampling contract, determinism, bad files, shards, layouts, --shard."""
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from avsoundscape.audio import SAMPLE_RATE, load_audio
from avsoundscape.pairs import PairConfig, load_shard, plan_chunks, prepare, sample_pairs
from avsoundscape.sources import discover
from avsoundscape.vad import speech_mask
from conftest import ffmpeg

SENTENCES = ["The market opens early and the stalls fill with fruit.",
             "Trains leave the station every ten minutes in the morning.",
             "She walked along the beach while the waves kept rolling in.",
             "Please remember to close the window before you leave the office."]


@pytest.fixture(scope="module")
def speech_clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("tts")
    clips = []
    for i, text in enumerate(SENTENCES):
        subprocess.run(["espeak-ng", "-v", ["en-us", "en-gb"][i % 2], "-w", str(d / f"{i}.wav"), text], check=True)
        clips.append(load_audio(d / f"{i}.wav")[: int(2.5 * SAMPLE_RATE)].numpy())
    return clips


def talking_audio(clip, seconds=8.0, seed=0):
    x = 0.01 * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32)
    for at in (0.5, 4.5):
        a = int(at * SAMPLE_RATE)
        x[a:a + len(clip)] += 0.5 * clip
    return x


def write_video(path, audio, seconds=8.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = path.with_suffix(".tmp.wav")
    sf.write(wav, audio, SAMPLE_RATE)
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x48:rate=10:duration={seconds}", "-i", str(wav),
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path))
    wav.unlink()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, speech_clips, media):
    d = tmp_path_factory.mktemp("videos")
    for i, clip in enumerate(speech_clips):
        write_video(d / f"walk{i % 2}" / f"v{i}.mp4", talking_audio(clip, seed=i))
    write_video(d / "quiet.mp4", 0.01 * np.random.default_rng(9).standard_normal(8 * SAMPLE_RATE).astype(np.float32))
    shutil.copy(media / "video_only.mp4", d / "no_audio.mp4")
    shutil.copy(media / "truncated.mp4", d / "broken.mp4")
    return d


CFG = PairConfig(enhancer="none", pairs_per_video=3, frame_size=32, min_gap_seconds=0.5, videos_per_shard=2)


@pytest.fixture(scope="module")
def prepared(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    return out, prepare(folder, out, CFG, progress=False)


def test_pairs_are_disjoint_keep_the_gap_and_targets_hold_speech(prepared, folder):
    out, summary = prepared
    assert summary["examples"] == 12
    clip, gap = CFG.clip, CFG.gap
    for shard in (out / "shards").glob("*/*.safetensors"):
        s = load_shard(shard)
        for i, e in enumerate(s["examples"]):
            t, c = e["target_start"], e["cond_start"]
            assert c + clip + gap <= t or c >= t + clip + gap
            assert speech_mask(s["target_wav"][i]).mean() > 0.3  # the VAD hears speech in every target
            audio = load_audio(folder / f"{e['video_id']}.mp4")
            assert torch.equal(s["target_wav"][i], audio[t:t + clip])
            assert torch.equal(s["cond_wav"][i], audio[c:c + clip])


def test_bad_files_are_skipped_counted_and_named(prepared):
    _, summary = prepared
    assert summary["videos"] == 7 and summary["videos_skipped"] == 3
    reasons = {s["video_id"]: s["reason"] for s in summary["skipped"]}
    assert "has no audio stream" in reasons["no_audio"]
    assert "broken.mp4" in reasons["broken"] and "corrupt" in reasons["broken"]
    assert "no clip with enough speech" in reasons["quiet"]


def test_same_seed_same_pairs_and_shards_reload_bit_exact(prepared, folder, tmp_path):
    out, _ = prepared
    prepare(folder, tmp_path, CFG, progress=False, workers=2)
    for shard in (out / "shards").glob("*/*.safetensors"):
        a, b = load_shard(shard), load_shard(tmp_path / shard.relative_to(out))
        assert a["examples"] == b["examples"]
        for k in a:
            if k != "examples":
                assert torch.equal(a[k], b[k]), k
    other = prepare(folder, tmp_path / "seed1", PairConfig(**{**CFG.__dict__, "seed": 1}), progress=False)
    starts = lambda d: sorted(json.dumps(e) for p in (d / "shards").glob("*/*.safetensors") for e in load_shard(p)["examples"])
    assert other["examples"] == 12 and starts(tmp_path / "seed1") != starts(out)


def test_rerun_skips_finished_shards_and_refuses_other_settings(prepared, folder):
    out, _ = prepared
    before = {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*/*.safetensors")}
    prepare(folder, out, CFG, progress=False)
    assert before == {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*/*.safetensors")}
    from avsoundscape.core import AvsError
    with pytest.raises(AvsError, match="other settings"):
        prepare(folder, out, PairConfig(**{**CFG.__dict__, "clip_seconds": 2.0}), progress=False)


def test_shard_jobs_cover_every_video_exactly_once(folder, tmp_path):
    n = 3
    seen = []
    for i in range(n):
        prepare(folder, tmp_path, CFG, shard=(i, n), progress=False)
    for side in (tmp_path / "shards").glob("*/*.json"):
        seen += json.loads(side.read_text())["videos"]
    assert sorted(seen) == sorted(s.id for s in discover(folder))
    chunks = plan_chunks(discover(folder), 2)
    assert all(len({v.split for v in vids}) == 1 for _, vids in chunks)


def test_acoustic_avspeech_layout(tmp_path, speech_clips):
    base = tmp_path / "AVSpeech"
    keys = []
    for i in range(80):
        rel = f"id{i:03d}/{i:05d}"
        keys.append(f"data/avspeech/AVSpeech/frames/{rel}.pkl")
        (base / "frames" / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / "frames" / f"{rel}.pkl").write_bytes(pickle.dumps([]))
    with open(base / "frames" / "balanced_rt60.dict", "wb") as f:
        pickle.dump({k: 0.5 for k in keys}, f)
    # only the first two train clips and the test clips get media; the rest are listed, not present
    sources = discover(tmp_path)
    by = {s: [v for v in sources if v.split == s] for s in ("train", "val", "test")}
    assert [len(by[s]) for s in ("train", "val", "test")] == [76, 1, 1]  # 95 % | skip one, to 97.5 % | skip one, the rest
    for v in by["train"][:2] + by["test"]:
        audio = talking_audio(speech_clips[0])
        write_video(v.video, audio)
        v.audio.parent.mkdir(parents=True, exist_ok=True)
        sf.write(v.audio, audio, SAMPLE_RATE)
    summary = prepare(tmp_path, tmp_path / "out", PairConfig(**{**CFG.__dict__, "videos_per_shard": 64}), progress=False)
    assert summary["examples"] == 9 and summary["videos_skipped"] == 75
    assert summary["examples_per_split"] == {"test": 3, "train": 6}
    assert all("file not found" in s["reason"] for s in summary["skipped"])


def test_cli_prepare_and_bad_shard(folder, tmp_path):
    exe = Path(sys.executable).parent / "avsoundscape"
    r = subprocess.run([str(exe), "prepare", str(folder), str(tmp_path / "o"), "--enhancer", "none",
                        "--pairs-per-video", "1", "--frame-size", "32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "4 examples from 4 videos (3 skipped)" in r.stdout
    r = subprocess.run([str(exe), "prepare", str(folder), str(tmp_path / "p"), "--shard", "3"], capture_output=True, text=True)
    assert r.returncode == 1 and "expected I/N" in r.stderr


def test_sample_pairs_on_short_audio_gives_none():
    assert sample_pairs(np.ones(30000, bool), 20480, 2, 8000, 0.5, np.random.default_rng(0)) == []
