"""Validation images: run the family's pipeline on the current weights and save PNGs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from trainer.families import Family


def validation_prompts(cfg: Mapping[str, Any]) -> list[str]:
    return [p.strip() for p in str(cfg["validation_prompt"]).splitlines() if p.strip()]


@contextlib.contextmanager
def on_device(modules: Sequence[Any], device: torch.device) -> Iterator[None]:
    """Bring modules waiting elsewhere (the VAE / text encoders a cache sent to the CPU) to
    `device` for the pipeline, which runs every part on one device; send them back after."""
    away = [(m, p.device) for m in modules if (p := next(m.parameters())).device != device]
    for m, _ in away:
        m.to(device)
    try:
        yield
    finally:
        for m, where in away:
            m.to(where)
        if away and device.type == "cuda":
            torch.cuda.empty_cache()


def run_validation(
    cfg: Mapping[str, Any],
    model: Family,
    denoiser: Any,
    text_encoders: list[Any],
    step: int,
    run_dir: Path,
    device: torch.device,
    weight_dtype: torch.dtype,
) -> list[dict[str, str]]:
    """Images for every prompt, saved under RUN_DIR/validation/step-<step>/<k>.png.

    The global RNG is forked so validation never changes the training noise that follows.
    """
    prompts = validation_prompts(cfg)
    if not prompts:
        return []
    pipe = model.pipeline(denoiser, text_encoders, model.validation_scheduler(cfg))
    pipe.set_progress_bar_config(disable=True)
    size = cfg["validation_resolution"] or cfg["resolution"]
    out_dir = Path(run_dir) / "validation" / f"step-{step:06d}"
    out_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, str]] = []
    n = cfg["num_validation_images"]
    call = model.validation_call(cfg)  # guidance and the family's own options
    was_training = denoiser.training
    denoiser.eval()
    parts = [model.vae, *text_encoders]
    with (
        on_device(parts, device),
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
    ):
        generator = torch.Generator(device=device).manual_seed(cfg["validation_seed"])
        autocast = torch.autocast(
            device.type, dtype=weight_dtype, enabled=weight_dtype != torch.float32
        )
        with torch.no_grad(), autocast:
            for prompt in prompts:
                result = pipe(
                    prompt,
                    num_images_per_prompt=n,
                    num_inference_steps=cfg["validation_inference_steps"],
                    height=size,
                    width=size,
                    generator=generator,
                    **call,
                )
                for img in result.images:
                    path = out_dir / f"{len(images)}.png"
                    tmp = path.with_suffix(".png.tmp")
                    img.save(tmp, format="PNG")
                    tmp.replace(path)
                    images.append({"path": str(path), "prompt": prompt})
    if was_training:
        denoiser.train()
    return images
