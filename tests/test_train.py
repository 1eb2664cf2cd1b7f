"""The training loop's contracts: resume equals an uninterrupted run, a kill while saving loses nothing
but the checkpoint being written, and two processes (gloo on CPU) train with no code change."""
import csv
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from avsoundscape.core import AvsError
from avsoundscape.train import StepBatchSampler, Trainer, TrainConfig, list_checkpoints

SCRIPT = Path(__file__).parent / "scripts" / "toy_train.py"
BIN = Path(sys.executable).parent


def toy(out, **kw):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 3, generator=g)
    data = torch.utils.data.TensorDataset(X, X @ torch.tensor([1.0, -2.0, 0.5]))
    cfg = TrainConfig(**{"steps": 6, "batch_size": 8, "lr": 0.05, "warmup_steps": 1, "ckpt_every": 2, "keep_last": 5, **kw})
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1))  # dropout: RNG state must resume too
    return Trainer(model, data, lambda m, b: torch.nn.functional.mse_loss(m(b[0]).squeeze(-1), b[1]), cfg, out)


def test_resume_contract(tmp_path):
    torch.manual_seed(0)
    full = toy(tmp_path / "full").fit(progress=False)
    torch.manual_seed(0)
    toy(tmp_path / "cut").fit(stop_at=4, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "cut")] == ["step-0000002", "step-0000004"]
    torch.manual_seed(123)  # a different process state: everything must come from the checkpoint
    resumed = toy(tmp_path / "cut").fit(resume=True, progress=False)
    assert resumed.step == 6
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    for p, q in zip(full.ema_model().parameters(), resumed.ema_model().parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


class ToyGAN(nn.Module):
    "A two-phase toy: critic `d` tells targets from the regressor's predictions; regressor `g` fits and fools it."

    def __init__(self, dropout=0.2):
        super().__init__()
        self.g, self.d = nn.Sequential(nn.Linear(3, 8), nn.Dropout(dropout), nn.Linear(8, 1)), nn.Linear(1, 1)

    def forward(self, batch, phase):
        x, y = batch
        fake = self.g(x)
        if phase == "d":
            return {"loss": (self.d(y[:, None]) - 1).pow(2).mean() + self.d(fake.detach()).pow(2).mean()}
        return {"loss": torch.nn.functional.mse_loss(fake.squeeze(-1), y) + 0.1 * (self.d(fake) - 1).pow(2).mean()}


def toy_gan(out, dropout=0.2, **kw):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 3, generator=g)
    data = torch.utils.data.TensorDataset(X, X @ torch.tensor([1.0, -2.0, 0.5]))
    cfg = TrainConfig(**{"steps": 6, "batch_size": 8, "lr": 0.05, "warmup_steps": 1, "ckpt_every": 2, "keep_last": 5,
                          "log_every": 1, **kw})
    torch.manual_seed(0)
    m = ToyGAN(dropout)
    return Trainer(m, data, lambda m, b, phase: m(b, phase), cfg, out,
                   phases={"d": list(m.d.parameters()), "g": list(m.g.parameters())}, ema_params="g")


def test_two_phase_resume_contract(tmp_path):
    full = toy_gan(tmp_path / "full").fit(progress=False)
    toy_gan(tmp_path / "cut").fit(stop_at=4, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "cut")] == ["step-0000002", "step-0000004"]
    ck = tmp_path / "cut" / "checkpoints" / "step-0000004"
    assert (ck / "optimizer.bin").is_file() and (ck / "optimizer_1.bin").is_file()   # both optimizers saved
    assert (ck / "scheduler.bin").is_file() and (ck / "scheduler_1.bin").is_file()
    torch.manual_seed(123)
    resumed = toy_gan(tmp_path / "cut").fit(resume=True, progress=False)
    assert resumed.step == 6
    assert len(resumed.ema.shadow_params) == 4                                      # g's weights only
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    for p, q in zip(full.ema_model().parameters(), resumed.ema_model().parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    for name in ("d", "g"):  # Adam's moments too, not just the weights they produced
        for a, b in zip(full.opts[name].state_dict()["state"].values(), resumed.opts[name].state_dict()["state"].values()):
            torch.testing.assert_close(a["exp_avg_sq"], b["exp_avg_sq"], rtol=0, atol=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "cut" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6] and all(r["loss"] == r["g_loss"] for r in rows)


def test_two_phases_equal_a_hand_written_alternating_loop(tmp_path):
    "Phase d steps on d only, then phase g on g only (gradients g's loss left on d do not leak into d's next step)."
    tr = toy_gan(tmp_path / "t", dropout=0.0, steps=3, grad_clip=0.0, ema_decay=0.0, warmup_steps=1).fit(progress=False)
    torch.manual_seed(0)
    m = ToyGAN(0.0)
    cfg = tr.cfg
    opts = {k: torch.optim.AdamW(getattr(m, k).parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
            for k in ("d", "g")}
    lam = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, 3) / 3)) * 0.9 + 0.1
    scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, lam) for k, o in opts.items()}
    X, Y = tr.dataset.tensors
    sampler = StepBatchSampler(len(X), cfg.batch_size, cfg.seed)
    for step in range(3):
        idx = sampler.batch(step)
        for k in ("d", "g"):
            opts[k].zero_grad(set_to_none=True)
            m((X[idx], Y[idx]), k)["loss"].backward()
            opts[k].step(); scheds[k].step()
    for p, q in zip(m.parameters(), tr.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_refuses_to_overwrite_a_run_without_resume(tmp_path):
    toy(tmp_path, steps=2).fit(progress=False)
    with pytest.raises(AvsError, match="holds checkpoints already"):
        toy(tmp_path, steps=4).fit(progress=False)


def test_sigkill_while_saving_keeps_the_previous_checkpoint(tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, str(SCRIPT), str(out), "6", "--stall-save-at", "4"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "saving").exists():
        assert p.poll() is None, p.stderr.read().decode()
        assert time.time() < deadline, "the run never reached the stalled save"
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert [c.name for c in list_checkpoints(out)] == ["step-0000002"]
    leftovers = [c.name for c in (out / "checkpoints").iterdir() if c.name.startswith(".")]
    assert leftovers, "the half-written checkpoint should be left under its temporary name"
    r = subprocess.run([sys.executable, str(SCRIPT), str(out), "6", "--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "done at step 6" in r.stdout
    assert [c.name for c in list_checkpoints(out)][-1] == "step-0000006"
    assert not [c for c in (out / "checkpoints").iterdir() if c.name.startswith(".")], "stale temporary folders are cleaned"
    r2 = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "ref"), "6"], capture_output=True, text=True)
    assert r2.returncode == 0, r2.stderr
    assert (out / "final.txt").read_text() == (tmp_path / "ref" / "final.txt").read_text()


def test_two_processes_with_accelerate_launch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # `--multi_gpu` selects accelerate's torchrun launcher; with no GPU, Accelerator runs the processes on CPU (gloo)
    r = subprocess.run([str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
                        str(SCRIPT), str(tmp_path / "ddp"), "4"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rank 0/2 done at step 4" in r.stdout and "rank 1/2 done at step 4" in r.stdout
    assert [c.name for c in list_checkpoints(tmp_path / "ddp")] == ["step-0000002", "step-0000004"]


def test_two_phases_in_two_processes(tmp_path):
    "A GAN-like run under DDP: each phase's pass goes through forward, unused parameters are allowed, ranks agree."
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29519",
                        str(SCRIPT.parent / "toy_gan_train.py"), str(tmp_path / "ddp"), "4"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # the two ranks' lines may interleave on one stdout line: match them, not lines
    done = dict(re.findall(r"rank (\d)/2 done at step 4 weights (-?\d+\.\d{6})", r.stdout))
    assert set(done) == {"0", "1"} and done["0"] == done["1"], r.stdout
    assert [c.name for c in list_checkpoints(tmp_path / "ddp")] == ["step-0000002", "step-0000004"]


def test_each_process_gets_its_slice_of_every_batch():
    whole = StepBatchSampler(50, 8, seed=3)
    halves = [StepBatchSampler(50, 8, seed=3, rank=r, world=2) for r in (0, 1)]
    for step in range(10):
        a, b = halves[0].batch(step), halves[1].batch(step)
        assert sorted(a + b) == sorted(whole.batch(step)) and len(a) == len(b) == 4


def test_cli_train_ldm_and_resume(tmp_path):
    import yaml

    from avsoundscape.pairs import save_shard
    from avsoundscape.stylize import TINY_MODEL
    from avsoundscape.stylize import Stylizer

    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    ex = [dict(id=f"v{i}@0", video_id=f"v{i}", split="train", target_start=0, cond_start=30000,
               input_wav=0.1 * r(20480), target_wav=0.1 * r(20480), cond_wav=0.1 * r(20480),
               cond_frames=torch.randint(0, 255, (1, 32, 32, 3), dtype=torch.uint8, generator=g),
               input_mel=r(64, 128) - 5, target_mel=r(64, 128) - 5) for i in range(6)]
    save_shard(tmp_path / "pairs" / "shards" / "train" / "train-00000.safetensors", ex)
    params = {"model": TINY_MODEL, "ldm": {"steps": 4, "batch_size": 2, "ckpt_every": 2, "warmup_steps": 1},
              "stylizer": {"steps": 2}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    run = lambda *a: subprocess.run([str(BIN / "avsoundscape"), "train", "ldm", "--params", str(tmp_path / "p.yaml"),
                                     "--pairs", str(tmp_path / "pairs"), "--out", str(tmp_path / "run"), *a],
                                    capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    res = run()
    assert res.returncode == 0, res.stderr
    assert Stylizer.from_pretrained(tmp_path / "run" / "model").meta["provenance"]["steps"] == 4
    res = run()
    assert res.returncode == 1 and "holds checkpoints already" in res.stderr
    params["ldm"]["steps"] = 6
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    res = run("--resume")
    assert res.returncode == 0, res.stderr
    assert [c.name for c in list_checkpoints(tmp_path / "run")][-1] == "step-0000006"
