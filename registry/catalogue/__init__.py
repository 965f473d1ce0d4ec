"""The field catalogue: every option of a run, one module per tab.

`FIELDS` holds the top-level config keys, `DATASET_FIELDS` the keys of one `[[datasets]]`
entry. Importing this package checks the catalogue's internal consistency (unique names,
dependencies pointing at real fields of the same scope, defaults that fit their field).
"""

from __future__ import annotations

from typing import NamedTuple

from registry.catalogue import (
    checkpoints,
    dataset,
    flow_matching,
    hardware,
    model,
    optimizer,
    quantization,
    training,
    validation,
)
from registry.field import ConfigField, DependencyGroup, FieldDependency, FieldType, Scope


class TabInfo(NamedTuple):
    name: str
    title: str
    icon: str  # material icon name
    sections: tuple[str, ...]
    description: str


TABS: tuple[TabInfo, ...] = (
    TabInfo(
        "model",
        "Model",
        "view_in_ar",
        model.SECTIONS,
        "Base model and how it is fine-tuned (LoRA or full).",
    ),
    TabInfo(
        "training",
        "Training",
        "fitness_center",
        training.SECTIONS,
        "Duration, batch, resolution, loss and memory.",
    ),
    TabInfo(
        "optimizer",
        "Optimizer",
        "tune",
        optimizer.SECTIONS,
        "Optimizer, learning rate and its schedule.",
    ),
    TabInfo(
        "validation",
        "Validation",
        "image",
        validation.SECTIONS,
        "Sample images rendered while training.",
    ),
    TabInfo(
        "checkpoints",
        "Checkpoints",
        "save",
        checkpoints.SECTIONS,
        "Output folder, checkpoints, resuming, logging and trackers.",
    ),
    TabInfo(
        "hardware",
        "Hardware",
        "memory",
        hardware.SECTIONS,
        "Precision, attention and multi-GPU launch (accelerate).",
    ),
    TabInfo(
        "datasets",
        "Datasets",
        "photo_library",
        dataset.SECTIONS,
        "Folders of images and captions to train on.",
    ),
)
_TAB_BY_NAME = {tab.name: tab for tab in TABS}

ALL_FIELDS: tuple[ConfigField, ...] = (
    *model.FIELDS,
    *quantization.FIELDS,
    *flow_matching.FIELDS,
    *training.FIELDS,
    *optimizer.FIELDS,
    *validation.FIELDS,
    *checkpoints.FIELDS,
    *hardware.FIELDS,
    *dataset.FIELDS,
)
FIELDS: dict[str, ConfigField] = {f.name: f for f in ALL_FIELDS if f.scope == Scope.CONFIG}
DATASET_FIELDS: dict[str, ConfigField] = {f.name: f for f in ALL_FIELDS if f.scope == Scope.DATASET}
_DECLARATION_ORDER = {f.name: i for i, f in enumerate(ALL_FIELDS)}


def fields_for_tab(tab: str) -> list[ConfigField]:
    """A tab's fields in display order: section order, then importance, then declaration."""
    info = _TAB_BY_NAME.get(tab)
    if info is None:
        raise KeyError(f"unknown tab {tab!r}; tabs are {', '.join(_TAB_BY_NAME)}")
    section_rank = {s: i for i, s in enumerate(info.sections)}
    fields = [f for f in ALL_FIELDS if f.tab == tab]
    return sorted(
        fields,
        key=lambda f: (
            section_rank.get(f.section, len(section_rank)),
            f.importance.rank,
            _DECLARATION_ORDER[f.name],
        ),
    )


def sections_of(tab: str, scope: Scope = Scope.CONFIG) -> list[tuple[str, list[ConfigField]]]:
    """A tab's fields of one scope grouped by section, sections and fields in display order
    (the order of fields_for_tab): the forms and the dataset cards both lay out from this."""
    grouped: dict[str, list[ConfigField]] = {}
    for f in fields_for_tab(tab):
        if f.scope == scope:
            grouped.setdefault(f.section, []).append(f)
    return list(grouped.items())


def fields_for_scope(scope: Scope) -> dict[str, ConfigField]:
    return FIELDS if scope == Scope.CONFIG else DATASET_FIELDS


def dependency_targets(rule: FieldDependency | DependencyGroup) -> set[str]:
    """The fields a rule reads."""
    if isinstance(rule, FieldDependency):
        return {rule.field}
    targets: set[str] = set()
    for sub in rule.rules:
        targets |= dependency_targets(sub)
    return targets


def _check_catalogue() -> None:
    """Fail at import on a mistake in the catalogue, rather than at run time in a form."""
    names = [n for f in ALL_FIELDS for n in (f.name, *f.aliases)]  # an alias is a name too
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate field names: {sorted(duplicates)}")
    for field in ALL_FIELDS:
        if field.tab not in _TAB_BY_NAME:
            raise ValueError(f"{field.name}: unknown tab {field.tab!r}")
        if field.section not in _TAB_BY_NAME[field.tab].sections:
            raise ValueError(
                f"{field.name}: section {field.section!r} not listed by tab {field.tab!r}"
            )
        scope_fields = fields_for_scope(field.scope)
        for rule in field.dependencies:
            for target in dependency_targets(rule):
                if target not in scope_fields or target == field.name:
                    raise ValueError(f"{field.name}: depends on unknown field {target!r}")
        if field.model_families and "model_family" not in FIELDS:
            raise ValueError(f"{field.name}: model_families needs a model_family field")
        if (
            field.type == FieldType.CHOICE
            and field.choices
            and field.default not in field.choice_values
        ):
            raise ValueError(f"{field.name}: default {field.default!r} is not a choice")


_check_catalogue()

__all__ = [
    "ALL_FIELDS",
    "DATASET_FIELDS",
    "FIELDS",
    "TABS",
    "TabInfo",
    "dependency_targets",
    "fields_for_scope",
    "fields_for_tab",
    "sections_of",
]
