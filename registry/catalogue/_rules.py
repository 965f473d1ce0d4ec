"""Short constructors for the dependency rules the catalogue modules declare."""

from __future__ import annotations

from typing import Any

from registry.field import DependencyGroup, Effect, FieldDependency, Op, Platform

CUDA_ONLY: tuple[Platform, ...] = (Platform.CUDA,)
# model_family values by how they are trained: DDPM noise (epsilon / v-prediction, SNR
# weighting) or flow matching (velocity targets, timestep density and shift).
DDPM_FAMILIES: tuple[str, ...] = ("demo", "sd1x", "sd2x", "sdxl")
FLOW_FAMILIES: tuple[str, ...] = ("flux", "sd3")
# Image sides must be multiples of this many pixels (default 8, the VAE's downsampling): Flux
# packs 2x2 latent patches and SD3's transformer has 2x2 patches, so 16 for both.
SIZE_MULTIPLE: dict[str, int] = {"flux": 16, "sd3": 16}


def when(
    field: str,
    op: Op,
    value: Any = None,
    *,
    effect: Effect = Effect.HIDE,
    reason: str | None = None,
) -> FieldDependency:
    return FieldDependency(field=field, op=op, value=value, effect=effect, reason=reason)


def only_if(
    field: str, *values: Any, effect: Effect = Effect.HIDE, reason: str | None = None
) -> FieldDependency:
    """`field` equals the one value given, or is one of several."""
    if len(values) == 1:
        return when(field, Op.EQUALS, values[0], effect=effect, reason=reason)
    return when(field, Op.IN, list(values), effect=effect, reason=reason)


def all_of(
    *rules: FieldDependency | DependencyGroup,
    effect: Effect = Effect.HIDE,
    reason: str | None = None,
) -> DependencyGroup:
    return DependencyGroup(mode="all", rules=rules, effect=effect, reason=reason)


def any_of(
    *rules: FieldDependency | DependencyGroup,
    effect: Effect = Effect.HIDE,
    reason: str | None = None,
) -> DependencyGroup:
    return DependencyGroup(mode="any", rules=rules, effect=effect, reason=reason)
