"""One client's form: the explicit (sparse) values, the datasets, dirty flag and field states.

Pages bind to this model instead of keeping values in elements or globals. A change goes
through `set_value`, which re-evaluates only the fields that depend on it (the registry's
Evaluator) and returns what changed so the UI can touch just those elements.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from registry.catalogue import FIELDS
from registry.coercion import BLANK, BLANK_MESSAGE, from_widget
from registry.evaluator import Evaluator, FieldState, PlatformContext
from registry.family_defaults import default_for
from registry.field import Scope
from registry.validation import (
    Issue,
    ValidationResult,
    canonical_keys,
    check_value,
    validate_config,
)


@dataclass
class FieldChange:
    """The outcome of one edit: the states that changed and the field's inline error."""

    name: str
    changed_states: dict[str, FieldState]
    error: str | None
    dirty_changed: bool
    problems_changed: bool


@functools.lru_cache(maxsize=8)
def _evaluator_for(ctx: PlatformContext) -> Evaluator:
    """One compiled evaluator per platform, shared by every page's form: it keeps no form's
    state, and compiling it per page cost every page load time and ~0.5 MB."""
    return Evaluator(ctx, Scope.CONFIG)


@dataclass
class FormState:
    ctx: PlatformContext = field(default_factory=PlatformContext)
    explicit: dict[str, Any] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    config_name: str | None = None
    dirty: bool = False
    # Values a widget could not hand over (an emptied number box): kept so the error shows.
    blanks: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._evaluator = _evaluator_for(self.ctx)
        self.states: dict[str, FieldState] = self._evaluator.evaluate(self.explicit)
        self._validation: ValidationResult | None = None
        self._problems_key: tuple[tuple[str, str], ...] = ()
        self.listeners: list[Callable[[FieldChange], None]] = []
        self.reload_listeners: list[Callable[[], None]] = []
        self._problems_key = self._key(self.problems())

    # ---- reading -------------------------------------------------------------------------
    def value(self, name: str) -> Any:
        if name in self.explicit:
            return self.explicit[name]
        if name == "model_family":
            return copy.deepcopy(FIELDS[name].default)
        return default_for(name, self.value("model_family"))

    def config(self) -> dict[str, Any]:
        """The sparse config as saved or exported: explicit values plus the datasets."""
        cfg = copy.deepcopy(self.explicit)
        if self.datasets:
            cfg["datasets"] = copy.deepcopy(self.datasets)
        return cfg

    def validation(self) -> ValidationResult:
        if self._validation is None:
            self._validation = validate_config(self.config(), self.ctx)
        return self._validation

    def field_error(self, name: str) -> str | None:
        if name in self.blanks:
            return BLANK_MESSAGE
        if name in self.explicit:
            return check_value(FIELDS[name], self.explicit[name])
        return None

    def problems(self) -> list[Issue]:
        """Every error that blocks a start: blank boxes first, then the whole-config check."""
        issues = [
            Issue(path=name, message=BLANK_MESSAGE, severity="error")
            for name in sorted(self.blanks)
        ]
        issues.extend(self.validation().errors)
        return issues

    @staticmethod
    def _key(issues: list[Issue]) -> tuple[tuple[str, str], ...]:
        return tuple((issue.path, issue.message) for issue in issues)

    # ---- editing -------------------------------------------------------------------------
    def set_value(self, name: str, value: Any) -> FieldChange:
        value = from_widget(FIELDS[name], value)
        if value is BLANK:
            self.blanks.add(name)
            changed: dict[str, FieldState] = {}
        else:
            self.blanks.discard(name)
            self.explicit[name] = value
            self.states, changed = self._evaluator.update(self.explicit, name, self.states)
        return self._finish(name, changed)

    def reset_value(self, name: str) -> FieldChange:
        """Forget the explicit value so the default applies again."""
        self.blanks.discard(name)
        self.explicit.pop(name, None)
        self.states, changed = self._evaluator.update(self.explicit, name, self.states)
        return self._finish(name, changed)

    def set_datasets(self, datasets: list[dict[str, Any]]) -> FieldChange:
        self.datasets = copy.deepcopy(datasets)
        return self._finish("datasets", {})

    def _finish(self, name: str, changed: dict[str, FieldState]) -> FieldChange:
        self._validation = None
        was_dirty, self.dirty = self.dirty, True
        key = self._key(self.problems())
        problems_changed, self._problems_key = key != self._problems_key, key
        error = self.field_error(name) if name in FIELDS else None
        result = FieldChange(name, changed, error, not was_dirty, problems_changed)
        for listener in list(self.listeners):
            listener(result)
        return result

    def replace(self, config: dict[str, Any], name: str | None, *, dirty: bool = False) -> None:
        """Swap in a whole config (load, import): every field is re-evaluated."""
        config = copy.deepcopy(dict(config))
        self.datasets = list(config.pop("datasets", []) or [])
        # (older names of a field, e.g. in a run record, are read as today's)
        self.explicit = {k: v for k, v in canonical_keys(config).items() if k in FIELDS}
        self.blanks = set()
        self.config_name = name
        self.dirty = dirty
        self.states = self._evaluator.evaluate(self.explicit)
        self._validation = None
        self._problems_key = self._key(self.problems())
        for listener in list(self.reload_listeners):
            listener()

    def mark_saved(self, name: str) -> None:
        self.config_name = name
        self.dirty = False

    # ---- the per-browser draft -----------------------------------------------------------
    def to_draft(self) -> dict[str, Any]:
        return {
            "explicit": copy.deepcopy(self.explicit),
            "datasets": copy.deepcopy(self.datasets),
            "config_name": self.config_name,
            "dirty": self.dirty,
            "blanks": sorted(self.blanks),
        }

    @classmethod
    def from_draft(cls, draft: dict[str, Any], ctx: PlatformContext) -> FormState:
        saved = canonical_keys(dict(draft.get("explicit") or {}))
        explicit = {k: v for k, v in saved.items() if k in FIELDS}
        return cls(
            ctx=ctx,
            explicit=explicit,
            datasets=list(draft.get("datasets") or []),
            config_name=draft.get("config_name"),
            dirty=bool(draft.get("dirty")),
            blanks={b for b in draft.get("blanks", []) if b in FIELDS},
        )
