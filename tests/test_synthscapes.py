"""SynthScapes, the generated dataset: layout, splits, ground truth, acoustics, levels, codec, pictures, determinism, CLI."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from avsoundscape.audio import LogMel
from avsoundscape.pictures import render_frames
from avsoundscape.scenes import CATEGORIES, CATEGORY_NAMES, SPLITS, draw_room, room_rir, rt60_of
from avsoundscape.synthscapes import (MANIFEST_FIELDS, check_video, generate, load_manifest, load_metas, plan_scene,
                                      snr_db)
from avsoundscape.video import probe_video, read_video_audio, read_video_frames
from avsoundscape.voices import voice_by_id

EXE = Path(sys.executable).parent / "avsoundscape"
N, SECONDS, SEED = 12, 6.0, 7


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    "A small SynthScapes folder: 12 videos (every category) of 6 s, made by two workers."
    root = tmp_path_factory.mktemp("synth") / "ss"
    s = generate(root, videos=N, seconds=SECONDS, seed=SEED, workers=2, progress=False)
    assert s["videos"] == N
    return root


@pytest.fixture(scope="module")
def metas(data):
    return load_metas(data)


def test_layout(data, metas):
    rows = load_manifest(data)
    with open(data / "manifest.csv", newline="") as f:
        assert tuple(csv.DictReader(f).fieldnames) == MANIFEST_FIELDS
    assert [r["video_id"] for r in rows] == [f"synth{i:05d}" for i in range(N)]
    info = json.loads((data / "synthscapes.json").read_text())
    assert (info["seed"], info["videos"], info["seconds"]) == (SEED, N, SECONDS)
    for r, m in zip(rows, metas):
        assert r["video"] == m["video"] == f"videos/{r['split']}/{r['video_id']}.mp4" and (data / r["video"]).is_file()
        assert r["meta"] == f"meta/{r['video_id']}.json"
        for k, rel in m["truth"].items():  # ground truth lives apart, under truth/<video_id>/
            assert rel == f"truth/{r['video_id']}/{k}.wav" and (data / rel).is_file()
        assert not Path(m["video"]).is_absolute()
    # training-visible files (videos/, meta/, manifest) hold no audio of the truth
    assert not list((data / "videos").rglob("*.wav")) and not list((data / "meta").rglob("*.wav"))


def test_every_category_and_split_by_scene(metas):
    assert sorted(m["category"] for m in metas) == sorted(CATEGORY_NAMES)  # 12 videos: each category once
    assert {m["split"] for m in metas} == set(SPLITS)
    by_split = {s: {m["scene_id"] for m in metas if m["split"] == s} for s in SPLITS}
    assert not (by_split["train"] & by_split["val"]) and not (by_split["train"] & by_split["test"])
    assert not (by_split["val"] & by_split["test"])
    assert len({m["scene_id"] for m in metas}) == N  # one scene per video
    rirs = {m["split"]: set() for m in metas}  # no room shared across splits either
    for m in metas:
        rirs[m["split"]].add(json.dumps(m["room"], sort_keys=True))
    assert not (rirs["train"] & rirs["test"])


def test_test_speech_never_heard_in_train(metas):
    voices = {s: {v for m in metas if m["split"] == s for v in m["voices"]} for s in SPLITS}
    texts = {s: {g["text"] for m in metas if m["split"] == s for g in m["segments"]} for s in SPLITS}
    assert voices["test"] and texts["test"]
    assert not (voices["test"] & voices["train"]) and not (voices["test"] & voices["val"])
    assert not (texts["test"] & texts["train"]) and not (texts["test"] & texts["val"])
    assert all(voice_by_id(v).pool == ("test" if s == "test" else "train") for s in SPLITS for v in voices[s])
    # and over many drawn scenes, not just these twelve
    plans = [plan_scene(0, i, s) for i in range(60) for s in ("train", "test")]
    tr = {sp["voice"] for p in plans if p.split == "train" for sp in p.speakers}
    te = {sp["voice"] for p in plans if p.split == "test" for sp in p.speakers}
    assert te and not (tr & te)


def test_speech_segments(data, metas):
    for m in metas:
        assert 1 <= len(m["speakers"]) <= 3 and len(set(m["voices"])) == len(m["voices"])
        segs = m["segments"]
        assert segs and all(0 <= s["start"] < s["end"] <= m["seconds"] for s in segs)
        assert all(a["end"] < b["start"] for a, b in zip(segs, segs[1:]))  # pauses between utterances
        dry = sf.read(str(data / m["truth"]["dry"]))[0]
        quiet = np.ones(len(dry), bool)
        for s in segs:
            quiet[round(s["start"] * 16000): round(s["end"] * 16000)] = False
        assert np.abs(dry[quiet]).max() < 1e-6 and np.abs(dry[~quiet]).max() > 0.01


def test_rt60_of_every_written_rir_matches_meta(data, metas):
    errors = []
    for m in metas:
        h, sr = sf.read(str(data / m["truth"]["rir"]), dtype="float64")
        assert sr == 16000 and sf.info(str(data / m["truth"]["rir"])).subtype == "PCM_32" and np.abs(h).max() > 0.99
        rt = rt60_of(h, sr)
        errors.append(abs(rt - m["rt60"]))
        assert abs(rt - m["rt60"]) <= max(0.1 * m["rt60"], 0.05), (m["video_id"], rt, m["rt60"])
    assert max(errors) < 1e-6  # measured on the stored response: only meta's rounding differs
    assert all(m["rt60"] < 0.3 for m in metas if not m["indoor"])


def test_rt60_spans_rooms_over_a_larger_draw():
    "RIRs alone (no rendering) for 72 scenes: outdoor under 0.3 s, the whole set from about 0.2 to 2 s."
    rts = {}
    for i in range(72):
        p = plan_scene(3, i, "train")
        rts.setdefault(p.category, []).append(rt60_of(room_rir(p.room)))
    every = [r for v in rts.values() for r in v]
    assert min(every) < 0.25 and max(every) > 1.7, (min(every), max(every))
    indoor = [r for c, v in rts.items() if CATEGORIES[c].indoor for r in v]
    assert min(indoor) < 0.3
    assert max(r for c, v in rts.items() if not CATEGORIES[c].indoor for r in v) < 0.3
    assert np.median(rts["church"]) > 3 * np.median(rts["small_room"])


def test_snr_of_ambient_in_the_mixture(data, metas):
    for m in metas:
        c = check_video(data, m, frames=False)
        assert c["snr_truth_error"] < 0.01, c  # exact, up to 24-bit storage
        assert c["snr_mp4_error"] < 1.0, c  # from the decoded mp4: (mixture - wet speech) vs wet speech
        assert 0.0 <= m["snr_db"] <= 25.0


def test_mp4_decodes_to_the_mixture(data, metas):
    lm = LogMel()
    for m in metas:
        info = probe_video(data / m["video"])
        assert (info.width, info.height, info.fps, info.audio_rate, info.audio_channels) == (128, 128, 4.0, 16000, 1)
        wet = sf.read(str(data / m["truth"]["speech_wet"]))[0]
        amb = sf.read(str(data / m["truth"]["ambient"]))[0]
        mix = wet + amb
        y = read_video_audio(data / m["video"]).numpy().astype(np.float64)
        assert len(y) >= len(mix) and np.abs(y[len(mix):]).max(initial=0) < 0.05
        y = y[: len(mix)]
        assert snr_db(mix, y - mix) > 25, m["video_id"]  # aac at 96 kb/s: the waveform itself survives
        l1 = float((lm(torch.from_numpy(y.astype(np.float32))) - lm(torch.from_numpy(mix.astype(np.float32)))).abs().mean())
        assert l1 * 20 / np.log(10) < 1.0  # log-mel within 1 dB
        assert abs(20 * np.log10(np.abs(mix).max()) - m["peak_dbfs"]) < 0.01 and m["peak_dbfs"] <= -2.99


def test_frames_follow_the_scene_and_move(data, metas):
    means = {}
    for m in metas:
        frames, times = read_video_frames(data / m["video"], fps=4)
        assert frames.shape == (int(SECONDS * 4), 128, 128, 3)
        f = frames.float()
        assert (f[0] - f[-1]).abs().mean() > 1.0, m["category"]  # camera jitter and moving things
        means[m["category"]] = f.reshape(-1, 3).mean(0).numpy()
    # categories look different: nearest mean colour (over other drawn scenes) finds the category
    cents = {c: np.mean([render_frames(c, 1.0, 4, np.random.default_rng([k, 1]),
                                       draw_room(c, np.random.default_rng(k)).dims if CATEGORIES[c].indoor else None)
                         .reshape(-1, 3).mean(0) for k in range(4)], axis=0) for c in CATEGORY_NAMES}
    names = list(cents)
    hits = [names[int(np.argmin([np.linalg.norm(means[c] - cents[n]) for n in names]))] == c for c in means]
    assert np.mean(hits) >= 0.75, dict(zip(means, hits))


def test_rooms_are_drawn_at_their_size():
    from avsoundscape.pictures import Perspective

    width = lambda dims: (lambda P: P(P.W, 0, P.L)[0] - P(0, 0, P.L)[0])(Perspective(dims, 128, 8))
    small = draw_room("small_room", np.random.default_rng(0)).dims
    church = draw_room("church", np.random.default_rng(0)).dims
    train = draw_room("train", np.random.default_rng(0)).dims
    assert width(train) < width(church) < width(small)


def test_same_seed_same_meta_and_truth(data, tmp_path):
    again = tmp_path / "again"
    generate(again, videos=N, seconds=SECONDS, seed=SEED, workers=1, progress=False)  # another worker count
    for f in sorted((data / "meta").glob("*.json")):
        assert (again / "meta" / f.name).read_bytes() == f.read_bytes(), f.name
    truth = sorted((data / "truth").rglob("*.wav"))
    assert len(truth) == 4 * N
    for f in truth:
        assert (again / f.relative_to(data)).read_bytes() == f.read_bytes(), f
    assert (again / "manifest.csv").read_bytes() == (data / "manifest.csv").read_bytes()
    other = tmp_path / "other"
    generate(other, videos=2, seconds=3.0, seed=SEED + 1, workers=2, progress=False)
    assert (other / "meta/synth00000.json").read_text() != (data / "meta/synth00000.json").read_text()


def run(*args):
    return subprocess.run([str(EXE), *args], capture_output=True, text=True)


def test_cli_synth(tmp_path):
    r = run("synth", str(tmp_path / "ds"), "--videos", "2", "--seconds", "3", "--seed", "1", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "wrote 2 videos (6 s of audio" in r.stdout
    assert (tmp_path / "ds/manifest.csv").is_file() and len(list((tmp_path / "ds/videos").rglob("*.mp4"))) == 2
    assert len(list((tmp_path / "ds/truth").rglob("*.wav"))) == 8
    r = run("synth", str(tmp_path / "ds"), "--videos", "1", "--seconds", "2", "--seed", "1")  # an old dataset is replaced
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "ds/videos").rglob("*.mp4"))) == 1 and len(load_manifest(tmp_path / "ds")) == 1


@pytest.mark.parametrize("args, message", [
    (["--videos", "0"], "videos must be a whole number of at least 1 (got 0)"),
    (["--seconds", "1"], "seconds must be between 2 and 600 (got 1.0)"),
    (["--workers", "0"], "workers must be a whole number of at least 1 (got 0)"),
    (["--seed", "-3"], "seed must be a whole number of at least 0 (got -3)"),
])
def test_cli_synth_bad_settings(tmp_path, capsys, args, message):
    from avsoundscape.cli import main

    assert main(["synth", str(tmp_path / "ds"), *args]) == 1
    assert capsys.readouterr().err.strip() == f"avsoundscape synth: error: {message}"
    assert not (tmp_path / "ds").exists()


def test_cli_synth_bad_settings_one_line(tmp_path):
    r = run("synth", str(tmp_path / "ds"), "--videos", "0")
    assert r.returncode == 1
    assert r.stderr.strip() == "avsoundscape synth: error: videos must be a whole number of at least 1 (got 0)"


def test_cli_synth_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    r = run("synth", str(tmp_path), "--videos", "1", "--seconds", "2")
    assert r.returncode == 1 and "not empty and not a SynthScapes folder" in r.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"
