"""The reference the speed benchmark compares with: the same checkpoint driven the way a plain diffusers pipeline
(AudioLDM's) drives its UNet: one window at a time, a diffusers scheduler, classifier-free guidance by doubling the
batch, the condition encoders run again for every window, nothing cached, `torch.no_grad` only."""
from __future__ import annotations

import torch

from avsoundscape.diffusion import make_scheduler
from avsoundscape.stylize import Stylizer, crossfade_join, window_starts


@torch.no_grad()
def reference_stylize(st: Stylizer, speech: torch.Tensor, scene_audio, scene_image, steps: int, guidance: float,
                      sampler: str = "dpmsolver++", seed: int = 0) -> torch.Tensor:
    "Stylize `speech` window by window with `st`'s weights; the initial noise is drawn as `Stylizer.stream` draws it."
    W = st.window
    O = int(W * st.config["overlap"])
    n, den = len(speech), st.denoiser
    starts = window_starts(n, W, O)
    dev = st.device
    padded = torch.nn.functional.pad(speech, (0, starts[-1] + W - n)).to(dev)
    gen = torch.Generator(device=dev).manual_seed(seed)
    outs = []
    for s in starts:
        cond = st.encode_condition(scene_audio, scene_image)  # the encoders again, for every window
        both = cond.cat(den.condition(batch=1))
        mel = st.mel(padded[s:s + W][None])
        latent = st.codec.encode(mel)
        latents = torch.cat([latent, latent])
        # a denoiser with an acoustic prior generates the residual over it (as diffusion.sample does)
        base, prior = (den.prior_of(latent, cond), den.prior_of(latents, both)) if den.prior is not None else (None, None)
        sched = make_scheduler(den.config, sampler)
        sched.set_timesteps(steps)
        x = torch.randn((1, den.config.latent_channels, *latent.shape[2:]), generator=gen, device=dev) * sched.init_noise_sigma
        for t in sched.timesteps:
            xin = sched.scale_model_input(torch.cat([x, x]), t)
            c, u = den(xin, t.expand(2), latents, both, prior).chunk(2)
            x = sched.step(u + guidance * (c - u), t, x).prev_sample
        x = x if base is None else base + x
        outs.append(st.vocoder(st.codec.decode(x, frames=mel.shape[-1]))[:, :W])
    return crossfade_join(torch.cat(outs), starts, O, n).cpu()
