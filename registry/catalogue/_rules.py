"""Short constructors for the dependency rules the catalogue modules declare."""

from __future__ import annotations

from typing import Any

from registry.field import DependencyGroup, Effect, FieldDependency, Op, Platform

CUDA_ONLY: tuple[Platform, ...] = (Platform.CUDA,)


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
