"""The run bar's live memory/time estimate: the registry's model applied to the form's
effective config, compared with the selected GPUs' memory when there are GPUs to compare.

Contract: `describe(values, gpus)` never raises for a config that validated; with no GPU it
returns the estimate and `fits is None` (nothing to compare against)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services.hardware import GpuInfo
from registry.estimate import GB, biggest_savings, count_parameters, estimate


@dataclass(frozen=True)
class EstimateView:
    text: str  # "~9.8 GB peak · ~0.43 s/step"
    fits: bool | None  # None: no GPU to compare with
    warning: str = ""  # when it does not fit: how much is missing and the two biggest savers


@functools.lru_cache(maxsize=16)
def _params_of(model_path: str) -> dict:
    return count_parameters(Path(model_path)) if model_path else {}


def selected_gpus(gpus: list[GpuInfo], gpu_ids: str) -> list[GpuInfo]:
    if gpu_ids.strip() in ("", "all"):
        return gpus
    wanted = {int(i) for i in gpu_ids.split(",") if i.strip().isdigit()}
    return [g for g in gpus if g.index in wanted]


def describe(values: Mapping[str, Any], gpus: list[GpuInfo]) -> EstimateView:
    path = str(values.get("pretrained_model_name_or_path") or "")
    params = _params_of(path) if path and Path(path).exists() else {}
    chosen = selected_gpus(gpus, str(values.get("gpu_ids", "all")))
    device = "cuda" if chosen and not values.get("use_cpu") else "cpu"
    e = estimate(values, params, gpu_names=[g.name for g in chosen], device=device)
    text = f"~{e.peak_gb:.1f} GB peak · ~{e.step_s:.2g} s/step (estimate)"
    memory = [g.memory_total_mb for g in chosen if g.memory_total_mb]
    if device != "cuda" or not memory:
        return EstimateView(text=text, fits=None)
    smallest = min(memory) * 2**20
    if e.peak_bytes <= smallest:
        return EstimateView(text=f"{text} of {smallest / GB:.0f} GB", fits=True)
    savers = biggest_savings(values, params)
    tips = "; ".join(f"{label} (−{saved / GB:.1f} GB)" for label, saved in savers)
    warning = (
        f"Will probably not fit: ~{e.peak_gb:.1f} GB needed, {smallest / GB:.0f} GB on the "
        f"smallest selected GPU. Biggest savings: {tips or 'none found'}."
    )
    return EstimateView(text=text, fits=False, warning=warning)
