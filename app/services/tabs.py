"""TabService: which tabs the trainer page shows, in what order, and what each one holds.

Tab metadata (title, icon, sections) comes from the registry. What a tab renders beyond its
fields (the dataset list) is the page's own business. `bundle()` is the single call that
describes a tab's fields, for the page, tests or a CLI wizard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.services.field_views import FieldView, describe, matches
from registry.catalogue import DATASET_FIELDS, FIELDS, TABS, fields_for_tab, sections_of
from registry.field import ConfigField, Scope

DATASETS_TAB = "datasets"


@dataclass(frozen=True)
class TabSpec:
    name: str
    title: str
    icon: str
    sections: tuple[str, ...]
    description: str


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


class TabService:
    def __init__(self) -> None:
        self._tabs = tuple(
            TabSpec(
                name=info.name,
                title=info.title,
                icon=info.icon,
                sections=tuple(info.sections),
                description=info.description,
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
        sections = tuple(
            SectionBundle(
                section,
                tuple(
                    describe(
                        f, form.value(f.name), form.states.get(f.name), form.field_error(f.name)
                    )
                    for f in fields
                ),
            )
            for section, fields in sections_of(tab)
        )
        return TabBundle(self.get(tab), sections)

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
