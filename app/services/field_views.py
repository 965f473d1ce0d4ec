"""Registry fields turned into plain, render-ready descriptions.

Nothing here knows NiceGUI: the page, a test or a CLI wizard read the same `FieldView`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.evaluator import FieldState
from registry.field import ConfigField, FieldType, Importance

ADVANCED_LEVELS = frozenset({Importance.ADVANCED, Importance.EXPERT})


@dataclass(frozen=True)
class FieldView:
    name: str
    label: str
    type: FieldType
    widget: str  # number | text | textarea | switch | select | multiselect | path | model_file
    value: Any
    default: Any
    importance: Importance
    help: str
    hint: str
    flag: str
    options: dict[str, str]  # value -> label, unavailable ones say why
    visible: bool  # by the dependency rules (the advanced toggle is applied on top)
    enabled: bool
    reason: str | None
    error: str | None
    minimum: float | None
    maximum: float | None
    placeholder: str
    width: int

    @property
    def advanced(self) -> bool:
        return self.importance in ADVANCED_LEVELS


def widget_for(spec: ConfigField) -> str:
    if spec.type == FieldType.BOOL:
        return "switch"
    if spec.type in (FieldType.INT, FieldType.FLOAT):
        return "number"
    if spec.type == FieldType.CHOICE:
        return "select"
    if spec.type == FieldType.MULTI_CHOICE:
        return "multiselect"
    if spec.widget == "model_file":  # a folder, Hub id or model file: both pickers
        return "model_file"
    if spec.type == FieldType.PATH or spec.widget == "folder":
        return "path"
    if spec.type in (FieldType.TEXT, FieldType.LIST) or spec.widget == "textarea":
        return "textarea"
    return "text"


def options_for(spec: ConfigField, state: FieldState | None) -> dict[str, str]:
    """Choice value -> label; a choice unavailable here (platform, package) says why."""
    unavailable = state.unavailable_choices if state else {}
    options: dict[str, str] = {}
    for choice in spec.choices:
        label = choice.display
        if choice.value in unavailable:
            label = f"{label} (unavailable: {unavailable[choice.value]})"
        options[choice.value] = label
    if state is not None:  # a dynamic provider's values
        for value in state.choices:
            options.setdefault(value, value)
    return options


def describe(
    spec: ConfigField, value: Any, state: FieldState | None, error: str | None
) -> FieldView:
    return FieldView(
        name=spec.name,
        label=spec.display_label,
        type=spec.type,
        widget=widget_for(spec),
        value=value,
        default=spec.default,
        importance=spec.importance,
        help=spec.help,
        hint=spec.hint,
        flag=spec.flag,
        options=options_for(spec, state),
        visible=state.visible if state else True,
        enabled=state.enabled if state else True,
        reason=state.reason if state else None,
        error=error,
        minimum=spec.minimum,
        maximum=spec.maximum,
        placeholder=spec.placeholder,
        width=spec.width,
    )


def matches(spec: ConfigField, query: str) -> bool:
    """Search by name, flag, label or help text (case-insensitive, every word must match)."""
    haystack = " ".join((spec.name, spec.flag, spec.display_label, spec.help, spec.hint)).lower()
    return all(word in haystack for word in query.lower().split())
