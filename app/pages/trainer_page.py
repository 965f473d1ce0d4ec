"""The trainer page '/': header with the config controls, lazily rendered tabs, run bar.

One `TrainerPage` per client holds the client's FormState; every element reads from it
and every edit goes through it. The draft is mirrored into app.storage.user so a reload
(or a lost connection) brings back exactly what was typed.

The first load carries only what is on screen: a tab's panel, the search box (a button until
first clicked), the search results, the "unsaved changes" badge and the toolbar's rarer
actions (a "More" menu) are made when first needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nicegui import ElementFilter, app, ui
from nicegui.element import Element

from app.pages.config_toolbar import ConfigToolbar
from app.pages.datasets_tab import render_datasets_tab
from app.pages.fields_ui import FieldsUI
from app.pages.folder_picker import open_folder_picker
from app.pages.layout import apply_theme, page_frame, set_dirty_flag, transient_dialog
from app.pages.onboarding import Onboarding
from app.pages.preferences import open_preferences
from app.pages.run_bar import RunBar
from app.services.container import Services, get_services
from app.services.field_views import ADVANCED_LEVELS, FieldView, describe
from app.services.form_state import FieldChange, FormState
from app.services.tabs import DATASETS_TAB
from registry.catalogue import DATASET_FIELDS, FIELDS
from registry.family_defaults import family_changes

DRAFT_KEY = "trainer_draft"
TAB_KEY = "trainer_tab"

# What a tab renders beyond its fields: hook(form, services) returns the view it built.
ContextHook = Callable[[FormState, Services], Any]
CONTEXT_HOOKS: Mapping[str, ContextHook] = {DATASETS_TAB: render_datasets_tab}

# Edits that tick an onboarding step.
_ONBOARDING_FIELDS = {
    "model_family": "choose_model",
    "pretrained_model_name_or_path": "choose_model",
}


class TrainerPage:
    def __init__(self, services: Services, storage: dict[str, Any]) -> None:
        self.services = services
        self.storage = storage
        draft = storage.get(DRAFT_KEY)
        if isinstance(draft, dict):
            self.form = FormState.from_draft(draft, services.platform)
        else:
            self.form = FormState(ctx=services.platform)
        self.form.listeners.append(self._on_change)
        self.form.reload_listeners.append(self._on_reload)
        prefs = services.prefs.prefs
        self.fields = FieldsUI(
            self._edit,
            self._pick_folder,
            show_advanced=prefs.show_advanced,
            current_view=self._field_view,  # rows that start hidden are built when first shown
        )
        self.rendered: dict[str, ui.element] = {}
        self.context_views: dict[str, Any] = {}  # what context hooks built (the datasets tab)

    # ---- layout --------------------------------------------------------------------------
    def build(self) -> None:
        frame = page_frame(self.services, "/")
        self.dark = frame.dark
        ui.add_head_html(
            f"<script>window.tunerdeckDirty = {'true' if self.form.dirty else 'false'};</script>"
        )
        self.actions = ConfigToolbar(self.services, self.form, self.after_save)
        with frame.header_left:
            self.name_label = (
                ui.label(self._name_text()).classes("text-weight-medium").mark("config-name")
            )
            self.dirty_badge: ui.badge | None = None  # made when first needed (_set_badge)
            self.actions.render_selector()
        self._header_left, self._header_right = frame.header_left, frame.header_right
        with frame.header_right:
            # The search box is made on first use: an input costs the first load more than
            # this button does.
            self.search_box: ui.input | None = None
            self.search_button = (
                ui.button("Search settings", icon="search", on_click=self.open_search)
                .props("flat dense no-caps color=white")
                .mark("open-search")
            )
            self.advanced = (
                ui.switch(
                    "Show advanced",
                    value=self.fields.show_advanced,
                    on_change=lambda e: self._set_advanced(e.value),
                )
                .props("dark dense color=white")
                .mark("show-advanced")
            )
            ui.button(icon="settings", on_click=self._open_prefs).props(
                "flat round dense color=white title=Preferences"
            ).mark("open-prefs")

        with ui.column().classes("td-main td-w td-g2 td-p2") as self._main:
            self.actions.render_toolbar()
            self.onboarding = Onboarding(self.services.prefs)
            self.search_results: ui.card | None = None  # made by the first search
            tabs_meta = self.services.tabs.tabs()
            initial = self.storage.get(TAB_KEY)
            if initial not in {t.name for t in tabs_meta}:
                initial = tabs_meta[0].name
            with (
                ui.tabs(value=initial)  # type: ignore[arg-type]  # a tab's name works as well
                .props("inline-label outside-arrows mobile-arrows dense")
                .classes("td-w") as self.tabs
            ):
                for tab in tabs_meta:
                    ui.tab(tab.name, label=tab.title, icon=tab.icon).mark(f"tab-{tab.name}")
            # A tab's panel is made when the tab is first opened (_render_tab).
            self.panels = ui.tab_panels(
                self.tabs, value=initial, on_change=lambda e: self._tab_opened(e.value)
            ).classes("td-w bg-transparent")
        self.run_bar = RunBar(self.form, self.services, self.jump_to)
        self._render_tab(initial)
        self._set_badge()  # the beforeunload flag went out with the page's head
        self.fields.sync_errors(self._errors())

    def _field_view(self, name: str) -> FieldView:
        """A field as the form has it now (a row built late shows the latest value)."""
        error = self.form.field_error(name) or next(
            (i.message for i in self.form.problems() if i.path == name), None
        )
        return describe(FIELDS[name], self.form.value(name), self.form.states.get(name), error)

    def _name_text(self) -> str:
        return self.form.config_name or "Unsaved config"

    # ---- tabs ----------------------------------------------------------------------------
    def _tab_opened(self, name: Any) -> None:
        name = str(name)
        self.storage[TAB_KEY] = name
        self._render_tab(name)
        if name == "training":
            self.onboarding.complete("review_training")

    def _render_tab(self, name: str) -> None:
        """Tabs are built on first open: the page starts with one tab's elements only."""
        if name in self.rendered:
            return
        with self.panels:
            slot = ui.tab_panel(name).classes("td-p0 td-g2")  # a flex column: no wrapper
        spec = self.services.tabs.get(name)
        self.rendered[name] = slot
        with slot:
            with ui.row().classes("items-center td-w"):
                ui.label(spec.description).classes("td-sm text-grey-7 col")  # col: grows
                if self.services.tabs.fields(name):
                    ui.button("Why are some settings hidden?", icon="visibility_off").props(
                        "flat dense no-caps size=sm"
                    ).on("click", lambda n=name: self._why_hidden(n)).mark(f"why-hidden-{name}")
            hook = CONTEXT_HOOKS.get(name)
            if hook is not None:
                self.context_views[name] = hook(self.form, self.services)
            bundle = self.services.tabs.bundle(name, self.form)
            self.fields.render_sections(bundle.sections)
        self.fields.sync_errors(self._errors())

    def _why_hidden(self, tab: str) -> None:
        with (
            transient_dialog() as dialog,
            ui.card().classes("w-[40rem] max-w-full").mark("why-hidden"),
        ):
            ui.label(f"Hidden settings in {self.services.tabs.get(tab).title}").classes("text-h6")
            fields = self.services.tabs.fields(tab)
            rows = [(f, reason) for f in fields if (reason := self.hidden_reason(f.name))]
            if not rows:
                ui.label("Every setting of this tab is shown.")
            with ui.column().classes("gap-1 max-h-96 overflow-auto"):
                for f, reason in rows:
                    with ui.row().classes("gap-2 no-wrap"):
                        ui.label(f.display_label).classes("font-medium text-sm whitespace-nowrap")
                        ui.label(reason).classes("text-sm")
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    def hidden_reason(self, name: str) -> str | None:
        """Why a field is not on screen, in words; None when it is shown."""
        state = self.form.states.get(name)
        if state is not None and not state.visible:
            return state.reason or "hidden by another setting"
        if FIELDS[name].importance in ADVANCED_LEVELS and not self.fields.show_advanced:
            return f"{FIELDS[name].importance.value} setting: turn on 'Show advanced' to see it"
        return None

    # ---- edits ---------------------------------------------------------------------------
    def _edit(self, name: str, value: Any) -> None:
        before = self.form.value("model_family")
        self.form.set_value(name, value)
        if name == "model_family" and value != before:
            self._family_defaults_moved(before, str(value))

    def _family_defaults_moved(self, before: str, after: str) -> None:
        """Fields the user never set follow the new family's defaults; say which moved."""
        moved = family_changes(before, after, self.form.explicit)
        if not moved:
            return
        self.fields.set_values({n: new for n, (_, new) in moved.items()})
        parts = [f"{FIELDS[n].display_label} {old} → {new}" for n, (old, new) in moved.items()]
        ui.notify(
            f"{FIELDS['model_family'].display_label} defaults applied: {', '.join(parts)}"
            " (your own edits are kept)",
            type="info",
        )

    def _on_change(self, change: FieldChange) -> None:
        self.fields.apply_states(change.changed_states)
        if change.problems_changed:
            self.run_bar.set_problems(self.form.problems())
            self.fields.sync_errors(self._errors())
        else:
            self.fields.set_error(change.name, change.error)
        if change.dirty_changed:
            self._show_dirty()
        self.run_bar.show_estimate()
        self._save_draft()
        if change.name in _ONBOARDING_FIELDS:
            self.onboarding.complete(_ONBOARDING_FIELDS[change.name])
        if change.name == "datasets" and self.form.datasets:
            self.onboarding.complete("add_dataset")

    def _on_reload(self) -> None:
        """A whole config was swapped in: bring every rendered element in line."""
        self.fields.set_values({n: self.form.value(n) for n in self.fields.controls})
        self.fields.apply_all_states(self.form.states)
        self.fields.sync_errors(self._errors())
        self.run_bar.set_problems(self.form.problems())
        self.run_bar.show_estimate()
        self.name_label.text = self._name_text()
        self._show_dirty()
        self._save_draft()
        # Hook-rendered content (the datasets tab) re-reads the form.
        for name in [n for n in self.rendered if n in CONTEXT_HOOKS]:
            self.rendered.pop(name).delete()
            self._render_tab(name)

    def _errors(self) -> dict[str, str]:
        errors = {
            issue.path: issue.message for issue in self.form.problems() if issue.path in FIELDS
        }
        for name in self.fields.controls:
            message = self.form.field_error(name)
            if message:
                errors[name] = message
        return errors

    def _show_dirty(self) -> None:
        self._set_badge()
        set_dirty_flag(self.form.dirty)

    def _set_badge(self) -> None:
        """Show the "unsaved changes" badge while the form is dirty (made when first shown)."""
        if self.dirty_badge is None:
            if not self.form.dirty:
                return
            with self._header_left:
                self.dirty_badge = ui.badge("unsaved changes", color="orange").mark("dirty")
            self.dirty_badge.move(target_index=1)  # after the config's name
        self.dirty_badge.set_visibility(self.form.dirty)

    def _save_draft(self) -> None:
        self.storage[DRAFT_KEY] = self.form.to_draft()

    def after_save(self) -> None:
        self.name_label.text = self._name_text()
        self._show_dirty()
        self._save_draft()

    # ---- advanced, search, jump ----------------------------------------------------------
    def _set_advanced(self, show: bool) -> None:
        self.fields.set_show_advanced(show)
        for view in self.context_views.values():  # the dataset cards follow the same switch
            if hasattr(view, "set_advanced"):
                view.set_advanced(show)
        if self.services.prefs.prefs.show_advanced != show:
            self.services.prefs.update(show_advanced=show)

    def open_search(self) -> None:
        """Turn the search button into the search box, focused."""
        with self._header_right:
            box = ui.input(placeholder="Search settings", on_change=lambda e: self._search(e.value))
        box.props("dense outlined dark clearable autofocus debounce=200").style(
            "width: 14rem"
        ).mark("search")
        with box.add_slot("prepend"):
            ui.icon("search")
        box.move(target_index=0)
        self.search_button.delete()
        self.search_box = box

    def _search(self, query: str | None) -> None:
        hits = self.services.tabs.search(query or "")
        results = self._results_card()
        results.clear()
        results.set_visibility(bool((query or "").strip()))
        with results:
            if not hits:
                ui.label(f"No setting matches {query!r}.").classes("text-sm text-grey-7")
            for hit in hits:
                reason = None if hit.per_dataset else self.hidden_reason(hit.field.name)
                jump = self.jump_to_dataset_field if hit.per_dataset else self.jump_to
                with (
                    ui.row()
                    .classes("items-center gap-2 cursor-pointer w-full")
                    .on("click", lambda _, n=hit.field.name, j=jump: j(n))
                    .mark(f"hit-{hit.key}")
                ):
                    ui.icon(hit.tab.icon, size="xs")
                    ui.label(hit.field.display_label).classes("font-medium text-sm")
                    if not hit.per_dataset:  # dataset settings have no command-line flag
                        ui.label(hit.field.flag).classes("font-mono text-xs text-grey-7")
                    where = "each dataset" if hit.per_dataset else hit.tab.title
                    ui.label(f"in {where}").classes("text-xs text-grey-7")
                    if reason:
                        ui.label(f"hidden: {reason}").classes("text-xs text-warning")

    def _results_card(self) -> ui.card:
        """The search results' card, made on the first search just above the tabs."""
        if self.search_results is None:
            with self._main:
                self.search_results = ui.card().classes("td-w").mark("search-results")
            children = self._main.default_slot.children
            self.search_results.move(target_index=children.index(self.tabs))
        return self.search_results

    def _hide_results(self) -> None:
        if self.search_results is not None:
            self.search_results.set_visibility(False)

    def jump_to(self, name: str) -> None:
        """Open the field's tab, reveal it if it is advanced, scroll to it and flash it."""
        spec = FIELDS.get(name)
        tab = spec.tab if spec is not None else DATASETS_TAB
        self._hide_results()
        self.tabs.set_value(tab)
        self._render_tab(tab)
        if spec is None:
            return
        if spec.importance in ADVANCED_LEVELS and not self.fields.show_advanced:
            self.advanced.value = True  # runs _set_advanced
        ctl = self.fields.controls[name]
        state = self.form.states.get(name)
        if state is not None and not state.visible:
            ui.notify(
                f"{spec.display_label} is hidden: {state.reason}", type="warning", multi_line=True
            )
            return
        if ctl.row is not None:  # shown by now unless a rule hides it (said above)
            self._flash(ctl.row)

    def jump_to_dataset_field(self, name: str) -> None:
        """Open the datasets tab and show `name` on the first dataset's card."""
        self._hide_results()
        self.tabs.set_value(DATASETS_TAB)
        self._render_tab(DATASETS_TAB)
        label = DATASET_FIELDS[name].display_label
        found = list(ElementFilter(marker=f"dataset-0-{name}", local_scope=False))
        if not found:
            ui.notify(f"Add a dataset to set {label}: every dataset has its own.", type="info")
            return
        control = found[0]
        if not control.visible:
            ui.notify(
                f"{label} is hidden on this dataset: turn on Show advanced or change the "
                "settings it depends on.",
                type="warning",
                multi_line=True,
            )
            return
        self._flash(control)

    def _flash(self, element: Element) -> None:
        element.classes(add="td-highlight")
        ui.run_javascript(
            f"document.getElementById('{element.html_id}')?.scrollIntoView({{behavior: 'smooth', block: 'center'}})"
        )
        ui.timer(2.0, lambda: element.classes(remove="td-highlight"), once=True)

    # ---- dialogs -------------------------------------------------------------------------
    def _pick_folder(self, current: str, on_pick: Any) -> None:
        open_folder_picker(current or "", self.services.allowed_roots(), on_pick)

    def _open_prefs(self) -> None:
        open_preferences(
            self.services,
            current_values=lambda: {n: self.form.value(n) for n in FIELDS},
            on_theme=self._apply_theme,
            on_saved=lambda: None,
        )

    def _apply_theme(self, theme: str) -> None:
        self.dark = apply_theme(self.dark, theme)


def render_trainer_page() -> TrainerPage:
    page = TrainerPage(get_services(), app.storage.user)
    page.build()
    return page


def register() -> None:
    # dark=None: the page starts in the default theme ("auto") without a dark-mode element.
    @ui.page("/", title="tunerdeck", dark=None)
    def trainer() -> None:
        render_trainer_page()
