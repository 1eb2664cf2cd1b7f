"""A toy training run for the loop's process-level tests (run directly, or under `accelerate launch`).
Usage: toy_train.py OUT_DIR STEPS [--resume] [--stall-save-at STEP]
--stall-save-at makes the checkpoint write of that step hang half-way (a slow disk), so a test can SIGKILL it."""
import sys
import time
from pathlib import Path

import torch
from torch import nn

from avsoundscape.train import Trainer, TrainConfig

out, steps = Path(sys.argv[1]), int(sys.argv[2])
resume = "--resume" in sys.argv
stall = int(sys.argv[sys.argv.index("--stall-save-at") + 1]) if "--stall-save-at" in sys.argv else None

g = torch.Generator().manual_seed(0)
X = torch.randn(64, 3, generator=g)
data = torch.utils.data.TensorDataset(X, X @ torch.tensor([1.0, -2.0, 0.5]))
loss = lambda m, b: torch.nn.functional.mse_loss(m(b[0]).squeeze(-1), b[1])
torch.manual_seed(0)
tr = Trainer(nn.Linear(3, 1), data, loss, TrainConfig(steps=steps, batch_size=8, lr=0.05, warmup_steps=1,
                                                      ckpt_every=2, keep_last=3), out)
if stall is not None:
    real = tr.acc.save_state

    def slow_save(d):
        real(d)
        if tr.step == stall:
            (out / "saving").write_text(str(d))
            time.sleep(600)

    tr.acc.save_state = slow_save
tr.fit(resume=resume, progress=False)
if tr.acc.is_main_process:
    w = tr.acc.unwrap_model(tr.model).weight.detach().flatten().tolist()
    (out / "final.txt").write_text(" ".join(f"{v:.8f}" for v in w))
print(f"rank {tr.acc.process_index}/{tr.acc.num_processes} done at step {tr.step}")
