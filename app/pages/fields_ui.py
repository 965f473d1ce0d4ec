"""Fields-to-UI: turns FieldViews into NiceGUI elements and applies state changes to them.

Each field is a row (label, CLI flag, help icon, control, hint, disabled reason, error).
After an edit only the rows whose state changed are touched; `apply_states` returns how many
elements that was.

Given `current_view` (name -> the field's FieldView now), a row that starts hidden (an
advanced field while advanced ones are off, or one a dependency hides) is an empty placeholder
until it is first shown, then built from the form's values and states of that moment: most of
a tab's fields start hidden, and every element built costs the server and the browser.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nicegui import ui

from app.services.field_views import ADVANCED_LEVELS, FieldView, options_for
from app.services.tabs import SectionBundle
from registry.catalogue import FIELDS
from registry.evaluator import FieldState
from registry.field import ConfigField, FieldType

# on_edit(name, value); pick_folder(current, on_pick)
EditHandler = Callable[[str, Any], None]
FolderPicker = Callable[[str, Callable[[str], None]], None]


@dataclass
class FieldControl:
    view: FieldView
    row: ui.element
    control: Any  # a NiceGUI value element; None until a placeholder row is first shown
    reason: Any  # ui.label (None until built, as control)
    error: Any  # ui.label (None until built, as control)
    rule_visible: bool
    enabled: bool
    section: SectionControl | None = None

    @property
    def built(self) -> bool:
        return self.control is not None

    @property
    def advanced(self) -> bool:
        return self.view.importance in ADVANCED_LEVELS


@dataclass
class SectionControl:
    card: ui.element
    names: list[str] = field(default_factory=list)
    visible: bool = True


def _to_widget_value(view: FieldView, value: Any) -> Any:
    if view.type == FieldType.LIST and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if view.widget == "multiselect":
        return list(value or [])
    return value


class FieldsUI:
    """The rendered fields of one page (one client)."""

    def __init__(
        self,
        on_edit: EditHandler,
        pick_folder: FolderPicker,
        show_advanced: bool,
        specs: Mapping[str, ConfigField] | None = None,
        current_view: Callable[[str], FieldView] | None = None,
    ) -> None:
        # specs: the catalogue the rendered fields come from (DATASET_FIELDS for a dataset entry).
        self.specs: Mapping[str, ConfigField] = FIELDS if specs is None else specs
        self.on_edit = on_edit
        self.pick_folder = pick_folder
        self.show_advanced = show_advanced
        self.current_view = current_view  # None: every row is built at once
        self.controls: dict[str, FieldControl] = {}
        self.sections: list[SectionControl] = []
        self._suppress = False

    # ---- building ------------------------------------------------------------------------
    def render_sections(self, sections: tuple[SectionBundle, ...]) -> None:
        for bundle in sections:
            card = ui.card().classes("w-full td-section").mark(f"section-{bundle.title}")
            section = SectionControl(card)
            with card:
                ui.label(bundle.title).classes("text-subtitle1 font-medium")
                with ui.element("div").classes(
                    "grid grid-cols-1 md:grid-cols-12 gap-x-6 gap-y-3 w-full"
                ):
                    for view in bundle.fields:
                        ctl = self._render_field(view)
                        ctl.section = section
                        section.names.append(view.name)
            self.sections.append(section)
            self._sync_section(section)

    def _render_field(self, view: FieldView) -> FieldControl:
        span = (
            "md:col-span-12"
            if view.widget == "textarea"
            else f"md:col-span-{max(3, min(12, view.width))}"
        )
        row = (
            ui.column()
            .classes(f"td-field gap-1 col-span-1 {span} min-w-0")
            .mark(f"row-{view.name}")
        )
        row.props(f"data-field={view.name}")  # a stable hook for real-browser tests
        ctl = FieldControl(view, row, None, None, None, view.visible, True)
        self.controls[view.name] = ctl
        if self.current_view is not None and not self._row_visible(ctl):
            row.visible = False  # built when first shown (_reveal)
            return ctl
        self._build_row(ctl, view)
        row.visible = self._row_visible(ctl)
        return ctl

    def _build_row(self, ctl: FieldControl, view: FieldView) -> None:
        with ctl.row:
            with ui.row().classes("items-center gap-2 no-wrap w-full"):
                ui.label(view.label).classes("text-sm font-medium")
                ui.label(view.flag).classes("text-xs font-mono text-grey-7 td-flag")
                if view.advanced:
                    ui.badge(view.importance.value, color="grey-5").props("outline").classes(
                        "text-xs"
                    )
                ui.icon("help_outline", size="xs").classes("text-grey-7 cursor-help").tooltip(
                    view.help
                )
            control = self._render_control(view)
            control.mark(f"field-{view.name}")
            if view.hint:
                ui.label(view.hint).classes("text-xs text-grey-7")
            # The evaluator also reports hidden fields as disabled; only a shown one greys out.
            disabled = view.visible and not view.enabled
            reason = ui.label(view.reason if disabled and view.reason else "")
            reason.classes("text-xs text-warning td-reason").mark(f"reason-{view.name}")
            reason.visible = disabled and bool(view.reason)
            error = ui.label(view.error or "").classes("text-xs text-negative td-error")
            error.mark(f"error-{view.name}")
            error.visible = bool(view.error)
        if disabled:
            control.disable()
        ctl.view, ctl.control, ctl.reason, ctl.error = view, control, reason, error
        ctl.rule_visible, ctl.enabled = view.visible, not disabled

    def _show_row(self, ctl: FieldControl) -> None:
        """Bring the row's visibility in line; a placeholder row is built as it first shows."""
        visible = self._row_visible(ctl)
        if visible and not ctl.built:
            assert self.current_view is not None
            self._build_row(ctl, self.current_view(ctl.view.name))
        ctl.row.set_visibility(visible)

    def _render_control(self, view: FieldView) -> Any:
        name = view.name
        value = _to_widget_value(view, view.value)

        def changed(e: Any) -> None:
            if not self._suppress:
                self.on_edit(name, e.value)

        if view.widget == "switch":
            return ui.switch(value=bool(value), on_change=changed)
        if view.widget == "number":
            step = 1 if view.type == FieldType.INT else "any"
            # No min/max here: NiceGUI would silently clamp on blur; an out-of-range value
            # must stay visible with its error instead.
            number = ui.number(value=value, on_change=changed)
            return number.props(f"dense outlined step={step} debounce=300").classes("w-full")
        if view.widget in ("select", "multiselect"):
            multiple = view.widget == "multiselect"
            options = dict(view.options)
            if not multiple and value not in options and value is not None:
                options[value] = str(value)
            select = ui.select(options, value=value, multiple=multiple, on_change=changed)
            select.props("dense outlined options-dense" + (" use-chips" if multiple else ""))
            return select.classes("w-full")
        if view.widget == "textarea":
            area = ui.textarea(value=value or "", placeholder=view.placeholder, on_change=changed)
            return area.props("dense outlined autogrow debounce=300").classes("w-full")
        if view.widget == "model_file":
            return self._render_model_file(view, value)
        box = ui.input(value=value or "", placeholder=view.placeholder, on_change=changed)
        box.props("dense outlined debounce=300").classes("w-full")
        if view.widget == "path":
            with box.add_slot("append"):
                ui.button(
                    icon="folder_open",
                    on_click=lambda: self.pick_folder(box.value, self._setter(box)),
                ).props("flat dense round").tooltip("Choose a folder on the server").mark(
                    f"pick-{name}"
                )
        return box

    def _render_model_file(self, view: FieldView, value: Any) -> Any:
        """A path box with a folder and a model-file picker; below it, what a chosen file's
        header says (app.pages.model_file_picker: a header read, no torch)."""
        from app.pages.model_file_picker import model_facts_text, pick_model_file

        name = view.name

        def changed(e: Any) -> None:
            facts.text = model_facts_text(str(e.value or ""))
            facts.visible = bool(facts.text)
            if not self._suppress:
                self.on_edit(name, e.value)

        box = ui.input(value=value or "", placeholder=view.placeholder, on_change=changed)
        box.props("dense outlined debounce=300").classes("w-full")
        with box.add_slot("append"):
            ui.button(
                icon="folder_open", on_click=lambda: self.pick_folder(box.value, self._setter(box))
            ).props("flat dense round").tooltip("Choose a folder on the server").mark(
                f"pick-{name}"
            )
            ui.button(
                icon="description", on_click=lambda: pick_model_file(box.value, self._setter(box))
            ).props("flat dense round").tooltip("Choose a model file on the server").mark(
                f"pick-file-{name}"
            )
        facts = ui.label(model_facts_text(str(value or ""))).classes("text-xs text-primary")
        facts.mark(f"facts-{name}")
        facts.visible = bool(facts.text)
        return box

    @staticmethod
    def _setter(control: Any) -> Callable[[str], None]:
        def set_value(value: str) -> None:
            control.value = value  # fires on_change like a typed value

        return set_value

    # ---- applying changes ----------------------------------------------------------------
    def _row_visible(self, ctl: FieldControl) -> bool:
        return ctl.rule_visible and (self.show_advanced or not ctl.advanced)

    def apply_states(self, changed: dict[str, FieldState]) -> int:
        """Apply the evaluator's changed states; returns how many elements were updated."""
        touched: set[int] = set()
        dirty_sections: list[SectionControl] = []
        for name, state in changed.items():
            ctl = self.controls.get(name)
            if ctl is None:  # its tab was not opened yet: it renders with the new state later
                continue
            if state.visible != ctl.rule_visible:
                ctl.rule_visible = state.visible
                if ctl.row.visible != self._row_visible(ctl):  # an advanced row may stay hidden
                    built = ctl.built
                    self._show_row(ctl)
                    touched.add(ctl.row.id)
                    if not built and ctl.built:
                        touched.add(ctl.control.id)  # built just now, from the current state
                    if ctl.section is not None and ctl.section not in dirty_sections:
                        dirty_sections.append(ctl.section)
            if not state.visible or not ctl.built:
                continue  # a hidden row keeps its control as is: nothing on screen to update
            if state.enabled != ctl.enabled:
                ctl.enabled = state.enabled
                ctl.control.set_enabled(state.enabled)
                touched.add(ctl.control.id)
            reason_text = "" if state.enabled else (state.reason or "")
            if ctl.reason.text != reason_text or ctl.reason.visible != bool(reason_text):
                ctl.reason.text = reason_text
                ctl.reason.visible = bool(reason_text)
                touched.add(ctl.reason.id)
            if ctl.view.widget in ("select", "multiselect"):
                touched |= self._sync_options(ctl, state)
        for section in dirty_sections:
            if self._sync_section(section):
                touched.add(section.card.id)
        return len(touched)

    def _sync_options(self, ctl: FieldControl, state: FieldState) -> set[int]:
        options = options_for(self.specs[ctl.view.name], state)
        current = ctl.control.value
        if not isinstance(current, list) and current is not None and current not in options:
            options[current] = str(current)
        if options == ctl.control.options:
            return set()
        self._suppress = True
        try:
            ctl.control.set_options(options, value=current)
        finally:
            self._suppress = False
        return {ctl.control.id}

    def _sync_section(self, section: SectionControl) -> bool:
        """A section whose fields are all hidden is hidden too; True if that changed."""
        visible = any(self.controls[n].row.visible for n in section.names)
        if visible == section.visible:
            return False
        section.visible = visible
        section.card.set_visibility(visible)
        return True

    def set_show_advanced(self, show: bool) -> int:
        self.show_advanced = show
        count = 0
        for ctl in self.controls.values():
            if ctl.advanced and ctl.row.visible != self._row_visible(ctl):
                self._show_row(ctl)
                count += 1
        for section in self.sections:
            count += self._sync_section(section)
        return count

    def set_error(self, name: str, message: str | None) -> bool:
        ctl = self.controls.get(name)
        if (
            ctl is None
            or not ctl.built  # built with the error of that moment
            or (ctl.error.text == (message or "") and ctl.error.visible == bool(message))
        ):
            return False
        ctl.error.text = message or ""
        ctl.error.visible = bool(message)
        return True

    def sync_errors(self, errors: dict[str, str]) -> int:
        return sum(self.set_error(name, errors.get(name)) for name in self.controls)

    def set_values(self, values: dict[str, Any]) -> None:
        """Put values into rendered controls without treating them as user edits (load)."""
        self._suppress = True
        try:
            for name, value in values.items():
                ctl = self.controls.get(name)
                if ctl is not None and ctl.built:  # (a placeholder reads the form when built)
                    ctl.control.value = _to_widget_value(ctl.view, value)
        finally:
            self._suppress = False

    def apply_all_states(self, states: dict[str, FieldState]) -> int:
        return self.apply_states({n: s for n, s in states.items() if n in self.controls})

    def is_hidden(self, name: str) -> bool:
        ctl = self.controls.get(name)
        return ctl is not None and not ctl.row.visible
