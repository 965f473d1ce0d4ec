"""Defaults that depend on the model family (pure data: no torch, no NiceGUI).

Contract: a field's effective default is `FAMILY_DEFAULTS[family][field]` when the family
lists it, else the catalogue's `ConfigField.default`. It applies only where the user's config
does not set the field, so a value the user typed always wins; switching the family moves
every unset field to the new family's default (see `family_changes`). Validation, the trainer,
the form and the CLI all read defaults through `default_for` / `family_overrides`.

Why these values:
- demo: the built-in model is made for 64 px and learns its blobs in a few dozen steps, so a
  first run finishes in about a minute on a laptop CPU and shows a picture early.
- sd1x: trained at 512 px (the catalogue defaults already fit it).
- sd2x: the 768 px v-prediction checkpoints are the common ones.
- sdxl / flux / sd3: trained at 1024 px; flux / sd3 also have their LoRA rank, learning rate
  and validation settings (see the table).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from registry.catalogue import FIELDS

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "demo": {
        "resolution": 64,
        "max_train_steps": 60,
        "validation_steps": 20,
        "validation_inference_steps": 10,
    },
    "sd1x": {},
    "sd2x": {"resolution": 768},
    "sdxl": {"resolution": 1024},
    # Flux / SD3 LoRAs: the rank and learning rate the Flux trainers (ai-toolkit, fluxgym,
    # SimpleTuner) start from; validation guidance as their pipelines' documentation uses it
    # (Flux dev's distilled guidance 3.5; SD3.5 CFG around 4.5-5).
    "flux": {
        "resolution": 1024,
        "lora_rank": 16,
        "lora_alpha": 16.0,
        "learning_rate": 1e-4,
        "validation_guidance_scale": 3.5,
        "validation_inference_steps": 28,
    },
    "sd3": {
        "resolution": 1024,
        "lora_rank": 16,
        "lora_alpha": 16.0,
        "learning_rate": 1e-4,
        "validation_guidance_scale": 5.0,
        "validation_inference_steps": 28,
    },
}

# Every field some family overrides: switching families can change only these.
FAMILY_FIELDS: frozenset[str] = frozenset(k for d in FAMILY_DEFAULTS.values() for k in d)


def default_family() -> str:
    return str(FIELDS["model_family"].default)


def default_for(name: str, family: str | None = None) -> Any:
    """The default of field `name` under `family` (a fresh copy)."""
    family = family or default_family()
    table = FAMILY_DEFAULTS.get(family, {})
    if name in table:
        return copy.deepcopy(table[name])
    return copy.deepcopy(FIELDS[name].default)


def by_family(name: str) -> dict[str, Any]:
    """family -> its own default of field `name`, for the families that override it."""
    return {family: table[name] for family, table in FAMILY_DEFAULTS.items() if name in table}


def family_overrides(family: str | None) -> dict[str, Any]:
    """Every family-dependent field's default under `family` (catalogue default where the
    family lists none), so applying it over any other family's defaults is complete."""
    return {name: default_for(name, family) for name in sorted(FAMILY_FIELDS)}


def family_changes(
    old_family: str, new_family: str, explicit: Mapping[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """field -> (old default, new default) for each field the user did not set whose default
    differs between the two families: what a family switch changes on screen."""
    out: dict[str, tuple[Any, Any]] = {}
    for name in sorted(FAMILY_FIELDS):
        if name in explicit:
            continue
        before, after = default_for(name, old_family), default_for(name, new_family)
        if before != after:
            out[name] = (before, after)
    return out


__all__ = [
    "FAMILY_DEFAULTS",
    "FAMILY_FIELDS",
    "by_family",
    "default_family",
    "default_for",
    "family_changes",
    "family_overrides",
]
