"""A two-phase (GAN-like) toy run for the loop's multi-process test (run under `accelerate launch`).
Usage: toy_gan_train.py OUT_DIR STEPS"""
import sys
from pathlib import Path

import torch
from torch import nn

from avsoundscape.train import Trainer, TrainConfig


class ToyGAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.g, self.d = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 1)), nn.Linear(1, 1)

    def forward(self, batch, phase):  # through forward: DDP sees every phase's pass
        x, y = batch
        fake = self.g(x)
        if phase == "d":
            return {"loss": (self.d(y[:, None]) - 1).pow(2).mean() + self.d(fake.detach()).pow(2).mean()}
        return {"loss": torch.nn.functional.mse_loss(fake.squeeze(-1), y) + 0.1 * (self.d(fake) - 1).pow(2).mean()}


out, steps = Path(sys.argv[1]), int(sys.argv[2])
g = torch.Generator().manual_seed(0)
X = torch.randn(64, 3, generator=g)
data = torch.utils.data.TensorDataset(X, X @ torch.tensor([1.0, -2.0, 0.5]))
torch.manual_seed(0)
m = ToyGAN()
tr = Trainer(m, data, lambda m, b, phase: m(b, phase), TrainConfig(steps=steps, batch_size=8, lr=0.05, warmup_steps=1,
                                                                     ckpt_every=2, keep_last=3), out,
             phases={"d": list(m.d.parameters()), "g": list(m.g.parameters())}, ema_params="g")
tr.fit(progress=False)
w = torch.cat([p.detach().flatten() for p in tr.acc.unwrap_model(tr.model).parameters()])
print(f"rank {tr.acc.process_index}/{tr.acc.num_processes} done at step {tr.step} weights {w.sum().item():.6f}")
