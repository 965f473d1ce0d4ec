"""Which model family a diffusers folder holds, read from its JSON files (stdlib only, so the
registry can refuse a wrong folder before a run starts, and the trainer says the same).

model_index.json names the pipeline class; a folder without one may still hold a denoiser
whose config.json names its class. SD 1.x and 2.x share StableDiffusionPipeline: either
family accepts it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Pipeline classes named in model_index.json -> the model_family values they can be.
PIPELINE_FAMILIES: dict[str, tuple[str, ...]] = {
    "StableDiffusionPipeline": ("sd1x", "sd2x"),
    "StableDiffusionXLPipeline": ("sdxl",),
    "FluxPipeline": ("flux",),
    "StableDiffusion3Pipeline": ("sd3",),
}
# Denoiser classes (transformer/ or unet/ config.json), for folders without model_index.json.
DENOISER_FAMILIES: dict[str, tuple[str, ...]] = {
    "FluxTransformer2DModel": ("flux",),
    "SD3Transformer2DModel": ("sd3",),
}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def index_family(index: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    """(families, what said so) from a parsed model_index.json; ((), "") when unknown."""
    name = str(index.get("_class_name", ""))
    return PIPELINE_FAMILIES.get(name, ()), f"its model_index.json names {name}"


def folder_family(folder: Path) -> tuple[tuple[str, ...], str]:
    """(the families the folder's files say, what said so); ((), "") when they say none."""
    index = _read(folder / "model_index.json")
    if index is not None:
        return index_family(index)
    for sub in ("transformer", "unet"):
        config = _read(folder / sub / "config.json")
        name = str((config or {}).get("_class_name", ""))
        if name in DENOISER_FAMILIES:
            return DENOISER_FAMILIES[name], f"its {sub}/config.json names {name}"
    return (), ""


def wrong_family_message(family: str, where: str, found: tuple[str, ...], said: str) -> str | None:
    """The one message for a model of another family (None when it fits or is unknown)."""
    if not found or family in found or family == "demo":
        return None
    return (
        f"model_family is {family} but {where} is a {' or '.join(found)} model ({said}): "
        f"set model_family to {found[0]}, or choose a {family} model"
    )
