"""Model families as plug-ins: one module per family, one small typed interface.

Each family (demo, sd for SD 1.x/2.x, sdxl, flux, sd3, and later ones) is one module under
trainer/families/ defining a subclass of `trainer.families.base.Family`: it loads the parts
(diffusers folder or cached hub id), says which parts train and which stay frozen (and in what
precision), puts LoRA adapters on the layers that reach the loss, encodes prompts (and what may
be cached), prepares latents, adds noise and computes the target and per-sample loss weights
(DDPM epsilon / v-prediction, or flow matching), runs the denoiser with the family's extra
conditioning, saves (a LoRA file through the pipeline class's save_lora_weights, with metadata;
or a full diffusers folder) and builds the pipeline for validation images.

Adding a family later is one new module plus its catalogue entries (its `model_family` choice,
and `model_families` on the fields that apply only to it): register the class in FAMILIES
below. The training loop and the UI never branch on a family's name; they call the interface,
and the catalogue says which fields apply to which families.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer.families.base import Family, Noised, WrongFamilyError, found_family
from trainer.families.flux import Flux
from trainer.families.sd import SD, Demo
from trainer.families.sd3 import SD3
from trainer.families.sdxl import SDXL

FAMILIES: dict[str, type[Family]] = {
    name: cls for cls in (Demo, SD, SDXL, Flux, SD3) for name in cls.names
}


def family_for(name: str) -> type[Family]:
    """The Family class serving model_family `name`."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(
            f"unknown model_family {name!r}; choose one of {', '.join(FAMILIES)}"
        ) from None


def load_family(cfg: Mapping[str, Any], path: str | None = None) -> Family:
    """The run's model, loaded by its family (path: the config's model, resolved)."""
    cls = family_for(cfg["model_family"])
    return cls.load(cfg, path or cls.resolve_path(cfg))


__all__ = [
    "FAMILIES",
    "Family",
    "Noised",
    "WrongFamilyError",
    "family_for",
    "found_family",
    "load_family",
]
