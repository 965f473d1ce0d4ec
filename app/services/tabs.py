"""TabService: which tabs the trainer page shows, in what order, and what each one holds.

Tab metadata (title, icon, sections) comes from the registry; a tab may also carry a
context hook that renders extra content (the dataset list, a GPU inventory). `bundle()`
is the single call that describes a tab's fields, for the page, tests or a CLI wizard.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.services.field_views import FieldView, describe, matches
from registry.catalogue import DATASET_FIELDS, FIELDS, TABS, fields_for_tab
from registry.field import ConfigField, Scope

# A context hook renders a tab's own content: hook(form, services).
ContextHook = Callable[[Any, Any], Any]  # returns the view it built

DATASETS_TAB = "datasets"


@dataclass(frozen=True)
class TabSpec:
    name: str
    title: str
    icon: str
    sections: tuple[str, ...]
    description: str
    context_hook: ContextHook | None = None


@dataclass(frozen=True)
class SectionBundle:
    title: str
    fields: tuple[FieldView, ...]


@dataclass(frozen=True)
class TabBundle:
    tab: TabSpec
    sections: tuple[SectionBundle, ...]


@dataclass(frozen=True)
class SearchHit:
    field: ConfigField
    tab: TabSpec
    per_dataset: bool = False  # a field of each dataset entry (on the datasets tab)

    @property
    def key(self) -> str:
        return f"datasets.{self.field.name}" if self.per_dataset else self.field.name


def _datasets_hook() -> ContextHook | None:
    """The datasets part's renderer when it is installed; the page shows a placeholder if not."""
    if importlib.util.find_spec("app.pages.datasets_tab") is None:
        return None
    module = importlib.import_module("app.pages.datasets_tab")
    return getattr(module, "render_datasets_tab", None)


@dataclass
class TabService:
    hooks: dict[str, ContextHook] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if DATASETS_TAB not in self.hooks and (hook := _datasets_hook()) is not None:
            self.hooks[DATASETS_TAB] = hook
        self._tabs = tuple(
            TabSpec(
                name=info.name,
                title=info.title,
                icon=info.icon,
                sections=tuple(info.sections),
                description=info.description,
                context_hook=self.hooks.get(info.name),
            )
            for info in TABS
        )
        self._by_name = {tab.name: tab for tab in self._tabs}

    def tabs(self) -> tuple[TabSpec, ...]:
        return self._tabs

    def get(self, name: str) -> TabSpec:
        return self._by_name[name]

    def fields(self, tab: str) -> list[ConfigField]:
        """The config-scope fields of a tab, already in section/importance order."""
        return [f for f in fields_for_tab(tab) if f.scope == Scope.CONFIG]

    def bundle(self, tab: str, form: Any) -> TabBundle:
        """Describe a tab's sections and fields with the form's current values and states."""
        spec = self.get(tab)
        grouped: dict[str, list[FieldView]] = {}
        for f in self.fields(tab):
            view = describe(
                f, form.value(f.name), form.states.get(f.name), form.field_error(f.name)
            )
            grouped.setdefault(f.section, []).append(view)
        order = list(spec.sections) + [s for s in grouped if s not in spec.sections]
        sections = tuple(SectionBundle(s, tuple(grouped[s])) for s in order if s in grouped)
        return TabBundle(spec, sections)

    def search(self, query: str, limit: int = 30) -> list[SearchHit]:
        query = query.strip()
        if not query:
            return []
        hits: list[SearchHit] = []
        for f in FIELDS.values():
            if f.tab in self._by_name and matches(f, query):
                hits.append(SearchHit(f, self._by_name[f.tab]))
        if DATASETS_TAB in self._by_name:
            for f in DATASET_FIELDS.values():
                if matches(f, query):
                    hits.append(SearchHit(f, self._by_name[DATASETS_TAB], per_dataset=True))
        # Exact and prefix name hits first, then catalogue order.
        q = query.lower().lstrip("-")
        hits.sort(key=lambda h: (h.field.name != q, not h.field.name.startswith(q)))
        return hits[:limit]
