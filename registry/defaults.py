"""Default values of a whole config and of one dataset entry, straight from the catalogue."""

from __future__ import annotations

import copy
from typing import Any

from registry.catalogue import DATASET_FIELDS, FIELDS
from registry.family_defaults import family_overrides


def default_config(family: str | None = None) -> dict[str, Any]:
    """Every config field's default under `family` (the default family when None: its
    family defaults apply too) plus an empty `datasets` list (a fresh copy each call)."""
    config = {name: copy.deepcopy(f.default) for name, f in FIELDS.items()}
    config.update(family_overrides(family or config["model_family"]))
    config["datasets"] = []
    return config


def default_dataset() -> dict[str, Any]:
    """Every dataset-entry field's default (a fresh copy each call)."""
    return {name: copy.deepcopy(f.default) for name, f in DATASET_FIELDS.items()}
