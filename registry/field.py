"""Declarative description of one configuration field and its dependency rules.

Everything here is data: the UI, the trainer's argument parser, config validation and
the generated docs all read the same `ConfigField` objects.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FieldType(StrEnum):
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STR = "str"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    PATH = "path"
    TEXT = "text"  # multi-line string
    LIST = "list"  # list of strings


class Importance(StrEnum):
    ESSENTIAL = "essential"
    COMMON = "common"
    ADVANCED = "advanced"
    EXPERT = "expert"

    @property
    def rank(self) -> int:
        return _IMPORTANCE_RANK[self]


_IMPORTANCE_RANK = {
    Importance.ESSENTIAL: 0,
    Importance.COMMON: 1,
    Importance.ADVANCED: 2,
    Importance.EXPERT: 3,
}


class Platform(StrEnum):
    CUDA = "cuda"
    MPS = "mps"
    CPU = "cpu"


class Op(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    NOT_IN = "not_in"
    TRUTHY = "truthy"
    FALSY = "falsy"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"


class Effect(StrEnum):
    HIDE = "hide"
    DISABLE = "disable"


class Scope(StrEnum):
    CONFIG = "config"  # a top-level key of a run config
    DATASET = "dataset"  # a key of one entry of the config's `datasets` list


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldDependency(_Frozen):
    """The field is active only while `field <op> value` holds; otherwise `effect` applies."""

    field: str
    op: Op
    value: Any = None
    effect: Effect = Effect.HIDE
    reason: str | None = None  # overrides the generated sentence


class DependencyGroup(_Frozen):
    """Several rules joined by all/any; the group's effect applies when it does not hold."""

    mode: Literal["all", "any"]
    rules: tuple[FieldDependency | DependencyGroup, ...]
    effect: Effect = Effect.HIDE
    reason: str | None = None


class Choice(_Frozen):
    value: str
    label: str = ""
    help: str = ""
    platforms: tuple[Platform, ...] = ()  # empty: every platform
    # An optional package, e.g. "bitsandbytes"; a tuple: any one of those packages.
    requires: str | tuple[str, ...] | None = None

    @property
    def packages(self) -> tuple[str, ...]:
        """The packages of `requires` as a tuple (empty: none needed)."""
        if not self.requires:
            return ()
        return (self.requires,) if isinstance(self.requires, str) else self.requires

    @property
    def display(self) -> str:
        return self.label or self.value


class ConfigField(_Frozen):
    name: str  # config key and CLI flag `--name`
    # Older or other tools' names read as this field (config keys and flags); files are
    # written with `name` only.
    aliases: tuple[str, ...] = ()
    type: FieldType
    default: Any
    tab: str
    section: str
    importance: Importance = Importance.COMMON
    help: str
    hint: str = ""
    label: str = ""
    choices: tuple[Choice, ...] = ()
    choices_provider: str | None = None  # a named dynamic provider resolved at render time
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # `minimum` itself is not allowed (e.g. learning rate > 0)
    exclusive_maximum: bool = False  # `maximum` itself is not allowed (e.g. dropout < 1)
    multiple_of: int | None = None  # e.g. resolutions must be multiples of 8
    pattern: str | None = None
    platforms: tuple[Platform, ...] = ()  # empty: every platform
    model_families: tuple[str, ...] = ()  # empty: every family
    dependencies: tuple[FieldDependency | DependencyGroup, ...] = ()  # all must hold
    scope: Scope = Scope.CONFIG
    widget: str | None = None  # presentation hint: "slider", "textarea", "folder", ...
    width: int = 6  # columns out of 12
    placeholder: str = ""
    accelerate_override: bool = False  # may be cached in preferences (whitelist)
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> ConfigField:
        for name in (self.name, *self.aliases):
            if not name.isidentifier():
                raise ValueError(f"field name {name!r} is not an identifier")
        is_choice = self.type in (FieldType.CHOICE, FieldType.MULTI_CHOICE)
        if is_choice and not self.choices and not self.choices_provider:
            raise ValueError(f"{self.name}: a choice field needs choices or a provider")
        return self

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def display_label(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    @property
    def choice_values(self) -> tuple[str, ...]:
        return tuple(c.value for c in self.choices)


DependencyGroup.model_rebuild()
ConfigField.model_rebuild()
