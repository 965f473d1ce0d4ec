"""Decides, for a config and the machine it runs on, which fields are shown and usable.

One evaluator serves the UI (which fields to show, grey out, and why), validation (a hidden
field set to a non-default value is ignored, so it warns) and the docs (the rule sentences).

Rules are compiled once per (platform, scope) into small closures; `Evaluator.update`
re-evaluates only the fields that (transitively) depend on the field that changed. A field
whose controlling field is itself hidden or greyed out counts as not in use: its rule fails
and it borrows the controller's reason (e.g. ema_decay is hidden for LoRA because use_ema is).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from registry.catalogue import dependency_targets, fields_for_scope
from registry.family_defaults import FAMILY_DEFAULTS, FAMILY_FIELDS
from registry.field import (
    Choice,
    ConfigField,
    DependencyGroup,
    Effect,
    FieldDependency,
    FieldType,
    Op,
    Platform,
    Scope,
)

Device = Literal["cuda", "mps", "cpu"]


@dataclass(frozen=True, slots=True)
class PlatformContext:
    """What the machine that will train offers: its device and optional packages installed."""

    device: Device = "cpu"
    packages: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FieldState:
    """How one field presents itself. `enabled` is False whenever the field is not in use."""

    visible: bool
    enabled: bool
    reason: str | None = None
    choices: tuple[str, ...] = ()  # the values that can be picked here
    unavailable_choices: dict[str, str] = field(default_factory=dict)  # value -> why not

    @property
    def active(self) -> bool:
        return self.visible and self.enabled


# ---------------------------------------------------------------- sentences

_PLATFORM_NEEDS = {
    Platform.CUDA: "an NVIDIA GPU (CUDA)",
    Platform.MPS: "an Apple GPU (MPS)",
    Platform.CPU: "the CPU",
}
_FAMILY_NAMES = {
    "demo": "the demo model",
    "sd1x": "SD 1.x",
    "sd2x": "SD 2.x",
    "sdxl": "SDXL",
    "flux": "Flux.1",
    "sd3": "SD3",
}


def _join(words: list[str], last: str = "or") -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"


def platform_reason(platforms: Iterable[Platform]) -> str:
    return "needs " + _join([_PLATFORM_NEEDS[Platform(p)] for p in platforms])


def package_reason(package: str | Iterable[str]) -> str:
    names = [package] if isinstance(package, str) else list(package)
    if len(names) == 1:
        return f"needs the {names[0]} package (pip install {names[0]})"
    return f"needs the {_join(names)} package (pip install {names[0]}, for example)"


def family_reason(families: Iterable[str]) -> str:
    names = [_FAMILY_NAMES.get(f, f) for f in families]
    return f"only for {_join(names)} models"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        return value or "empty"
    return str(value)


def condition_text(rule: FieldDependency | DependencyGroup, scope: Scope = Scope.CONFIG) -> str:
    """The condition a rule states, as words: 'optimizer is adamw or adamw8bit'."""
    if isinstance(rule, DependencyGroup):
        parts = [condition_text(r, scope) for r in rule.rules]
        parts = [
            f"({p})" if isinstance(r, DependencyGroup) else p
            for p, r in zip(parts, rule.rules, strict=True)
        ]
        return f" {'and' if rule.mode == 'all' else 'or'} ".join(parts)
    name, value = rule.field, rule.value
    target = fields_for_scope(scope).get(name)
    kind = target.type if target else None
    values = [_show(v) for v in value] if isinstance(value, list | tuple) else [_show(value)]
    match rule.op:
        case Op.EQUALS:
            return f"{name} is {_show(value)}"
        case Op.NOT_EQUALS:
            return f"{name} is not {_show(value)}"
        case Op.IN:
            return f"{name} is {_join(values)}"
        case Op.NOT_IN:
            return (
                f"{name} is not {_join(values, 'or')}"
                if len(values) <= 2
                else f"{name} is none of {_join(values, 'and')}"
            )
        case Op.TRUTHY:
            return f"{name} is " + (
                "on"
                if kind == FieldType.BOOL
                else "set"
                if kind != FieldType.INT and kind != FieldType.FLOAT
                else "not 0"
            )
        case Op.FALSY:
            return f"{name} is " + (
                "off"
                if kind == FieldType.BOOL
                else "empty"
                if kind != FieldType.INT and kind != FieldType.FLOAT
                else "0"
            )
        case Op.GT:
            return f"{name} is above {_show(value)}"
        case Op.GTE:
            return f"{name} is at least {_show(value)}"
        case Op.LT:
            return f"{name} is below {_show(value)}"
        case Op.LTE:
            return f"{name} is at most {_show(value)}"
    raise ValueError(f"unknown op {rule.op!r}")  # pragma: no cover - Op is closed


def rule_sentence(rule: FieldDependency | DependencyGroup, scope: Scope = Scope.CONFIG) -> str:
    """Why a field is hidden or greyed out while `rule` does not hold."""
    if rule.reason:
        return rule.reason
    lead = "shown only when" if rule.effect == Effect.HIDE else "enabled only when"
    return f"{lead} {condition_text(rule, scope)}"


# ---------------------------------------------------------------- compiled rules

_ORDERING: dict[Op, Callable[[Any, Any], bool]] = {
    Op.GT: operator.gt,
    Op.GTE: operator.ge,
    Op.LT: operator.lt,
    Op.LTE: operator.le,
}
Getter = Callable[[str], Any]
States = Mapping[str, FieldState]
Check = Callable[[Getter, States], bool]


def _compile(rule: FieldDependency | DependencyGroup) -> Check:
    """A closure that tells whether `rule` holds; a leaf whose field is not in use fails."""
    if isinstance(rule, DependencyGroup):
        parts = tuple(_compile(r) for r in rule.rules)
        if rule.mode == "all":
            return lambda get, states: all(p(get, states) for p in parts)
        return lambda get, states: any(p(get, states) for p in parts)

    name, op, expected = rule.field, rule.op, rule.value

    def test(value: Any) -> bool:
        match op:
            case Op.EQUALS:
                return value == expected
            case Op.NOT_EQUALS:
                return value != expected
            case Op.IN:
                return value in expected
            case Op.NOT_IN:
                return value not in expected
            case Op.TRUTHY:
                return bool(value)
            case Op.FALSY:
                return not value
        try:
            return bool(_ORDERING[op](value, expected))
        except TypeError:  # a wrongly typed value never satisfies an ordering rule
            return False

    def check(get: Getter, states: States) -> bool:
        state = states.get(name)
        if state is not None and not state.active:
            return False
        try:
            return test(get(name))
        except TypeError:  # e.g. an unhashable value tested with `in`
            return False

    return check


@dataclass(frozen=True, slots=True)
class _Rule:
    check: Check
    effect: Effect
    sentence: str
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything about one field that depends only on the platform, not on the config."""

    name: str
    blocked: str | None  # the platform cannot run this field at all
    families: tuple[str, ...]
    family_sentence: str
    rules: tuple[_Rule, ...]
    choices: tuple[str, ...]
    unavailable: dict[str, str]


def _choice_block(choice: Choice, ctx: PlatformContext) -> str | None:
    if choice.platforms and ctx.device not in choice.platforms:
        return platform_reason(choice.platforms)
    if choice.packages and ctx.packages.isdisjoint(choice.packages):
        return package_reason(choice.packages)
    return None


def _plan(f: ConfigField, ctx: PlatformContext) -> _Plan:
    available: list[str] = []
    unavailable: dict[str, str] = {}
    for choice in f.choices:
        why = _choice_block(choice, ctx)
        if why is None:
            available.append(choice.value)
        else:
            unavailable[choice.value] = why
    rules = tuple(
        _Rule(
            _compile(r), r.effect, rule_sentence(r, f.scope), tuple(sorted(dependency_targets(r)))
        )
        for r in f.dependencies
    )
    return _Plan(
        name=f.name,
        blocked=platform_reason(f.platforms)
        if f.platforms and ctx.device not in f.platforms
        else None,
        families=tuple(f.model_families),
        family_sentence=family_reason(f.model_families) if f.model_families else "",
        rules=rules,
        choices=tuple(available),
        unavailable=unavailable,
    )


def _controllers(f: ConfigField) -> set[str]:
    found: set[str] = set()
    for rule in f.dependencies:
        found |= dependency_targets(rule)
    if f.model_families:
        found.add("model_family")
    return found


def _topological(fields: Mapping[str, ConfigField]) -> list[str]:
    """Field names ordered so every controller comes before the fields it controls."""
    order: list[str] = []
    marks: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if marks.get(name) == "done":
            return
        if marks.get(name) == "active":
            raise ValueError(f"dependency cycle: {' -> '.join((*path, name))}")
        marks[name] = "active"
        for target in sorted(_controllers(fields[name])):
            if target in fields:
                visit(target, (*path, name))
        marks[name] = "done"
        order.append(name)

    for name in fields:
        visit(name, ())
    return order


class Evaluator:
    """Evaluates every field of one scope for one platform; reuse it across edits."""

    def __init__(self, ctx: PlatformContext | None = None, scope: Scope = Scope.CONFIG) -> None:
        self.ctx = ctx or PlatformContext()
        self.scope = Scope(scope)
        self._fields = fields_for_scope(self.scope)
        self._defaults = {name: f.default for name, f in self._fields.items()}
        order = _topological(self._fields)
        self._plans = [_plan(self._fields[name], self.ctx) for name in order]
        position = {name: i for i, name in enumerate(order)}
        direct: dict[str, set[str]] = {name: set() for name in self._fields}
        direct.setdefault("model_family", set())
        for name, f in self._fields.items():
            for target in _controllers(f):
                direct.setdefault(target, set()).add(name)
        if self.scope == Scope.CONFIG:  # a family switch moves unset fields' defaults
            for name in FAMILY_FIELDS:
                direct["model_family"] |= direct.get(name, set())
        # Reverse index: a changed field -> every plan that must be re-evaluated, in order.
        self._affected: dict[str, tuple[_Plan, ...]] = {}
        for name in direct:
            seen: set[str] = set()
            stack = list(direct[name])
            while stack:
                dep = stack.pop()
                if dep not in seen:
                    seen.add(dep)
                    stack.extend(direct.get(dep, ()))
            self._affected[name] = tuple(
                self._plans[position[d]] for d in sorted(seen, key=position.__getitem__)
            )

    def dependents(self, name: str) -> tuple[str, ...]:
        """Every field whose state can change when `name` changes (transitively)."""
        return tuple(p.name for p in self._affected.get(name, ()))

    def _getter(self, config: Mapping[str, Any]) -> Getter:
        defaults = self._defaults

        family = config.get("model_family", defaults.get("model_family"))
        by_family: Mapping[str, Any] = {}
        if self.scope == Scope.CONFIG and isinstance(family, str):  # a bad value has none
            by_family = FAMILY_DEFAULTS.get(family, {})

        def get(name: str) -> Any:
            value = config.get(name, _MISSING)
            if value is _MISSING:
                return by_family[name] if name in by_family else defaults.get(name)
            return value

        return get

    def _state(self, plan: _Plan, get: Getter, states: States) -> FieldState:
        visible, enabled, reason = True, True, None
        if plan.blocked is not None:
            visible, reason = False, plan.blocked
        elif plan.families and get("model_family") not in plan.families:
            visible, reason = False, plan.family_sentence
        else:
            for rule in plan.rules:
                if rule.check(get, states):
                    continue
                effect, sentence = rule.effect, rule.sentence
                for target in rule.targets:  # a controller not in use explains it better
                    controller = states.get(target)
                    if controller is not None and not controller.active:
                        sentence = controller.reason or sentence
                        if not controller.visible:
                            effect = Effect.HIDE
                        break
                if effect == Effect.HIDE:
                    visible, reason = False, sentence
                    break
                if enabled:
                    enabled, reason = False, sentence
        return FieldState(
            visible=visible,
            enabled=enabled and visible,
            reason=reason,
            choices=plan.choices,
            unavailable_choices=plan.unavailable,
        )

    def evaluate(self, config: Mapping[str, Any]) -> dict[str, FieldState]:
        get = self._getter(config)
        states: dict[str, FieldState] = {}
        for plan in self._plans:
            states[plan.name] = self._state(plan, get, states)
        return states

    def update(
        self,
        config: Mapping[str, Any],
        changed_field: str,
        previous_states: Mapping[str, FieldState],
    ) -> tuple[dict[str, FieldState], dict[str, FieldState]]:
        """Re-evaluate only what depends on `changed_field`: (all states, the ones that changed)."""
        if any(name not in previous_states for name in self._fields):
            states = self.evaluate(config)
            return states, changed(previous_states, states)
        get = self._getter(config)
        states = dict(previous_states)
        diff: dict[str, FieldState] = {}
        for plan in self._affected.get(changed_field, ()):
            new = self._state(plan, get, states)
            if new != states[plan.name]:
                states[plan.name] = new
                diff[plan.name] = new
        return states, diff


_MISSING = object()


@lru_cache(maxsize=32)
def evaluator_for(ctx: PlatformContext, scope: Scope = Scope.CONFIG) -> Evaluator:
    """A shared evaluator per platform and scope (building one compiles every rule)."""
    return Evaluator(ctx, scope)


def evaluate(
    config: Mapping[str, Any], ctx: PlatformContext | None = None, scope: Scope = Scope.CONFIG
) -> dict[str, FieldState]:
    """Every field's state for `config` (sparse: missing keys take their defaults)."""
    return evaluator_for(ctx or PlatformContext(), Scope(scope)).evaluate(config)


def changed(
    before: Mapping[str, FieldState], after: Mapping[str, FieldState]
) -> dict[str, FieldState]:
    """The entries of `after` whose state differs from `before` (so a UI updates only those)."""
    return {name: state for name, state in after.items() if before.get(name) != state}


__all__ = [
    "Evaluator",
    "FieldState",
    "PlatformContext",
    "changed",
    "condition_text",
    "evaluate",
    "evaluator_for",
    "family_reason",
    "field_conditions",
    "package_reason",
    "platform_reason",
    "rule_sentence",
]


def field_conditions(f: ConfigField) -> list[str]:
    """Every restriction on a field as sentences, for --help and the docs."""
    found: list[str] = []
    if f.platforms:
        found.append(platform_reason(f.platforms))
    if f.model_families:
        found.append(family_reason(f.model_families))
    found.extend(rule_sentence(rule, f.scope) for rule in f.dependencies)
    for choice in f.choices:
        needs = [platform_reason(choice.platforms)] if choice.platforms else []
        if choice.packages:
            needs.append(package_reason(choice.packages))
        if needs:
            found.append(f"{choice.value} {' and '.join(needs)}")
    return found
