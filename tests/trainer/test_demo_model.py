"""The demo model is useful out of the box: its VAE reproduces the demo images, so validation
images of a demo run show colours and shapes instead of noise."""

from __future__ import annotations

from pathlib import Path


def test_demo_vae_reconstructs_the_demo_images(demo_model: Path) -> None:
    from diffusers import AutoencoderKL

    from trainer.demo_vae_fit import reconstruction_error

    vae = AutoencoderKL.from_pretrained(demo_model / "vae")
    # A random VAE scores about 0.7 here (pixels in [-1, 1]); the fitted one about 0.1.
    assert reconstruction_error(vae, 64) < 0.25
