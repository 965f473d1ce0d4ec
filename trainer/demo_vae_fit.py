"""A short, seeded fit of the demo model's tiny VAE on the demo dataset's images.

A random-weight VAE decodes any latent into coloured noise, so demo validation images could
never show what the UNet learns. A couple of hundred CPU steps (reconstruction plus a small KL
term) are enough for decoded latents to show the dataset's flat colours and shapes.
"""

from __future__ import annotations

from typing import Any

FIT_STEPS = 160
FIT_BATCH = 8
FIT_LR = 1e-3
KL_WEIGHT = 1e-3  # per latent element: keeps latents near N(0, 1) without blurring colours


def _demo_pixels(size: int) -> Any:
    """The demo images at `size` px as a float tensor in [-1, 1], shape (N, 3, size, size)."""
    import numpy as np
    import torch
    from PIL import Image

    from tunerdeck_common.demo_dataset import demo_items

    arrays = [
        np.asarray(img.resize((size, size), Image.Resampling.BICUBIC)) for _, img, _ in demo_items()
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def fit_demo_vae(vae: Any, size: int, seed: int) -> dict[str, float]:
    """Train `vae` in place (deterministic for a given seed) and set its scaling_factor.

    Returns the final reconstruction error and the scaling factor.
    """
    import torch

    # One thread: on a busy 2-core machine, two OpenMP threads ran this ~7x slower (spin-waits).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(vae, size, seed)
    finally:
        torch.set_num_threads(threads)


def _fit(vae: Any, size: int, seed: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    pixels = _demo_pixels(size)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=FIT_LR)
    vae.train()
    for step in range(FIT_STEPS):
        batch = pixels[torch.randperm(len(pixels), generator=gen)[:FIT_BATCH]]
        if step % 2:
            batch = batch.flip(3)  # the trainer's random_flip sees mirrored shapes too
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        loss = F.mse_loss(recon, batch) + KL_WEIGHT * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    vae.eval()
    with torch.no_grad():
        std = vae.encode(pixels).latent_dist.mean.std().item()
    # As Stable Diffusion does: scale latents to unit variance for the UNet's noise schedule.
    vae.register_to_config(scaling_factor=1.0 / std)
    return {"reconstruction_mse": reconstruction_error(vae, size), "scaling_factor": 1.0 / std}


def reconstruction_error(vae: Any, size: int) -> float:
    """Mean squared error of encode-decode (posterior mean) over the demo images at `size`."""
    import torch
    import torch.nn.functional as F

    pixels = _demo_pixels(size)
    with torch.no_grad():
        recon = vae.decode(vae.encode(pixels).latent_dist.mean).sample
    return F.mse_loss(recon, pixels).item()
