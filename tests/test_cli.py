"""The `avsoundscape` command: subcommands, error messages, lazy start-up."""
import subprocess
import sys

import soundfile as sf

from avsoundscape.cli import COMMANDS, main
from conftest import tone


from pathlib import Path

EXE = Path(sys.executable).parent / "avsoundscape"  # the console script of the installed package


def run(*args):
    return subprocess.run([str(EXE), *args], capture_output=True, text=True)


def test_help_imports_no_heavy_module():
    code = ("import sys; from avsoundscape.cli import build_parser; build_parser().format_help();"
            "heavy = [m for m in ('torch', 'numpy', 'av', 'soundfile', 'diffusers') if m in sys.modules];"
            "print(heavy); assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_help_lists_subcommands():
    r = run("--help")
    assert r.returncode == 0
    for name in COMMANDS:
        assert name in r.stdout


def test_info_and_convert(tmp_path, media, capsys):
    sf.write(tmp_path / "in.wav", tone(8000, 1.0, channels=2), 8000)
    assert main(["convert", str(tmp_path / "in.wav"), str(tmp_path / "out.wav")]) == 0
    y, sr = sf.read(tmp_path / "out.wav")
    assert sr == 16000 and y.ndim == 1 and len(y) == 16000
    assert main(["info", str(media / "av.mp4")]) == 0
    out = capsys.readouterr().out
    assert "streams: video, audio" in out and "96x64" in out and "48000 Hz x 2 ch" in out


def test_bad_input_gives_one_clear_line(tmp_path):
    (tmp_path / "empty.wav").touch()
    r = run("convert", str(tmp_path / "empty.wav"), str(tmp_path / "o.wav"))
    assert r.returncode == 1
    assert r.stderr.strip() == f"avsoundscape convert: error: {tmp_path / 'empty.wav'}: empty file (0 bytes)"
    assert "Traceback" not in r.stderr


def test_params_profiles_merge_over_params_yaml(tmp_path, capsys):
    import yaml
    from conftest import ROOT

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for profile in ("cpu-long", "paper"):
        out = tmp_path / f"{profile}.yaml"
        assert main(["params", profile, "--base", str(ROOT / "params.yaml"), "-o", str(out)]) == 0
        merged = yaml.safe_load(out.read_text())
        over = yaml.safe_load((ROOT / "profiles" / f"{profile}.yaml").read_text())
        assert set(merged) == set(base)  # every stage keeps its group
        for group, values in over.items():
            for k, v in values.items():
                assert merged[group][k] == v
    assert merged["model"]["clip_seconds"] == 10.24 and merged["frontend"] == base["frontend"]
    assert main(["params", "nope", "--base", str(ROOT / "params.yaml")]) == 1
    assert "no such profile (have: cpu-long, paper, tiny)" in capsys.readouterr().err


def test_evaluate_cli_on_a_tiny_synthscapes(tmp_path):
    import json

    import torch
    from avsoundscape.rt60 import RT60Estimator, save_rt60
    from avsoundscape.stylize import tiny_stylizer
    from avsoundscape.synthscapes import generate

    generate(tmp_path / "ss", videos=6, seconds=6.0, seed=0, workers=1)
    torch.manual_seed(0)
    tiny_stylizer().save_pretrained(tmp_path / "ck")
    save_rt60(RT60Estimator(channels=(8, 8, 8, 8)), tmp_path / "rt60")
    args = ["evaluate", str(tmp_path / "ss"), "--rt60", str(tmp_path / "rt60"), "--checkpoint", str(tmp_path / "ck"),
            "--out", str(tmp_path / "ev"), "--split", "train", "--per-video", "1", "--seconds", "2", "--cond-seconds", "1.28",
            "--enhancer", "none", "--report-cases", "1"]
    assert main(args) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["cases"] >= 3 and "dsp_matching" in m["methods"]["dry"] and "ours_av" in m["methods"]["enhanced"]
    crit = m["learned"]["dry"]  # an untrained model: its output carries noise that identity lacks, but no scene
    assert set(crit["gaps_vs_right"]) == {"identity", "ours_wrong_scene", "ours_no_condition"}
    gap = crit["gaps_vs_right"]["identity"]["ambient_distance_db"]
    assert gap["mean"] - gap["ci95"] > 0 and crit["learned"] is False
    assert "| dry | oracle (true target) |" in (tmp_path / "ev" / "table.md").read_text()
    assert len(list((tmp_path / "ev" / "audio").glob("*/*/*.wav"))) > 0
    bad = [str(tmp_path / "nope") if a == str(tmp_path / "rt60") else a for a in args]
    assert main(bad) == 1  # a missing estimator is one clear line, not a traceback
