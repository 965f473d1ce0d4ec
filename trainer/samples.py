"""Sample images during training: run the family's pipeline on the current weights and save
PNGs a person can compare across steps.

What renders at each validation: every line of validation_prompt (seed validation_seed, the
config's negative prompt), then every entry of user_prompt_library (its own seed and negative
prompt where it sets them; registry.prompt_library). Image k of a prompt uses seed + k, from a
generator of its own, so a prompt's image at one step depends on nothing but the weights: the
same prompt and seed at the same weights give the same image, whatever else is rendered.

Files: RUN_DIR/validation/step-<step:06d>/<i>.png, i counting the images in render order (the
`validation` event lists them with their prompt, name and seed). Each PNG carries its prompt,
negative prompt, seed, step and run name as text chunks: explicit keys (`prompt`,
`negative_prompt`, `seed`, `step`, `run_name`, `prompt_name`) and `parameters`, the form
AUTOMATIC1111's web UI writes and most image viewers show.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL.PngImagePlugin import PngInfo

from registry.prompt_library import load_prompt_library
from registry.user_paths import user_path
from trainer.families import Family


@dataclass(frozen=True, slots=True)
class SamplePrompt:
    name: str  # the library's name, or "" for a validation_prompt line
    prompt: str
    negative_prompt: str
    seed: int


def sample_prompts(cfg: Mapping[str, Any]) -> list[SamplePrompt]:
    """The prompts of one validation, in the order they render (the grid's rows)."""
    seed = int(cfg["validation_seed"])
    negative = str(cfg["validation_negative_prompt"] or "")
    out = [
        SamplePrompt("", line.strip(), negative, seed)
        for line in str(cfg["validation_prompt"]).splitlines()
        if line.strip()
    ]
    library = str(cfg["user_prompt_library"] or "").strip()
    if library:  # checked by validation before the run
        for entry in load_prompt_library(user_path(library)):
            out.append(
                SamplePrompt(
                    entry.name,
                    entry.prompt,
                    negative if entry.negative_prompt is None else entry.negative_prompt,
                    seed if entry.seed is None else entry.seed,
                )
            )
    return out


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


def png_text(
    sample: SamplePrompt,
    seed: int,
    step: int,
    run_name: str,
    cfg: Mapping[str, Any],
    size: int,
    sampling: Mapping[str, Any],
) -> PngInfo:
    """The PNG text chunks of one image (see the module docstring)."""
    info = PngInfo()
    negative = sampling.get("negative_prompt") or ""
    settings = [
        f"Steps: {cfg['validation_inference_steps']}",
        f"Sampler: {cfg['validation_scheduler']}",
        f"CFG scale: {sampling.get('guidance_scale', cfg['validation_guidance_scale'])}",
        f"Seed: {seed}",
        f"Size: {size}x{size}",
        f"Model: {cfg['model_family']}",
        f"Training step: {step}",
    ]
    if run_name:
        settings.append(f"Run: {run_name}")
    lines = [sample.prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(settings))
    info.add_itxt("parameters", "\n".join(lines))
    for key, value in (
        ("prompt", sample.prompt),
        ("negative_prompt", negative),
        ("prompt_name", sample.name),
        ("seed", str(seed)),
        ("step", str(step)),
        ("run_name", run_name),
    ):
        info.add_itxt(key, value)
    return info


def run_samples(
    cfg: Mapping[str, Any],
    model: Family,
    denoiser: Any,
    text_encoders: list[Any],
    step: int,
    run_dir: Path,
    device: torch.device,
    weight_dtype: torch.dtype,
    prompts: Sequence[SamplePrompt] | None = None,
) -> list[dict[str, Any]]:
    """Render every sample prompt (`prompts`, default sample_prompts(cfg)); returns one
    {path, prompt, name, seed, negative_prompt} per image, in render order (the `validation`
    event's images).

    The global RNG is forked so sampling never changes the training noise that follows.
    """
    if prompts is None:
        prompts = sample_prompts(cfg)
    if not prompts:
        return []
    pipe = model.pipeline(denoiser, text_encoders, model.validation_scheduler(cfg))
    pipe.set_progress_bar_config(disable=True)
    size = cfg["validation_resolution"] or cfg["resolution"]
    out_dir = Path(run_dir) / "validation" / f"step-{step:06d}"
    out_dir.mkdir(parents=True, exist_ok=True)
    run_name = str(cfg["run_name"] or "") or Path(run_dir).name
    images: list[dict[str, Any]] = []
    n = cfg["num_validation_images"]
    base_call = model.validation_call(cfg)  # guidance and the family's own options
    was_training = denoiser.training
    denoiser.eval()
    parts = [model.vae, *text_encoders]
    try:
        with (
            on_device(parts, device),
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        ):
            autocast = torch.autocast(
                device.type, dtype=weight_dtype, enabled=weight_dtype != torch.float32
            )
            with torch.no_grad(), autocast:
                for sample in prompts:
                    call = dict(base_call)
                    if "negative_prompt" in call:  # families without guidance take none
                        call["negative_prompt"] = sample.negative_prompt or None
                    seeds = [sample.seed + k for k in range(n)]
                    # One call per prompt (its text encoded once); a generator per image, so
                    # image k's noise comes from seed + k alone.
                    result = pipe(
                        sample.prompt,
                        num_images_per_prompt=n,
                        num_inference_steps=cfg["validation_inference_steps"],
                        height=size,
                        width=size,
                        generator=[torch.Generator(device=device).manual_seed(s) for s in seeds],
                        **call,
                    )
                    for seed, image in zip(seeds, result.images, strict=True):
                        path = out_dir / f"{len(images)}.png"
                        tmp = path.with_suffix(".png.tmp")
                        info = png_text(sample, seed, step, run_name, cfg, size, call)
                        image.save(tmp, format="PNG", pnginfo=info)
                        tmp.replace(path)
                        images.append(
                            {
                                "path": str(path),
                                "prompt": sample.prompt,
                                "name": sample.name,
                                "seed": seed,
                                "negative_prompt": sample.negative_prompt,
                            }
                        )
    finally:
        if was_training:
            denoiser.train()
    return images
