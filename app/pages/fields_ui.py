"""Fields-to-UI: turns FieldViews into NiceGUI elements and applies state changes to them.

Each field is a row (label, CLI flag, help icon, control, hint, disabled reason, error).
After an edit only the rows whose state changed are touched; `apply_states` returns how many
elements that was.

Given `current_view` (name -> the field's FieldView now), a row that starts hidden (an
advanced field while advanced ones are off, or one a dependency hides) has no element at all
until it is first shown, then is built from the form's values and states of that moment and
put in its place in its section: most of a tab's fields start hidden, and every element built
costs the server and the browser.
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
    row: ui.element | None  # None until a row that starts hidden is first shown
    control: Any  # a NiceGUI value element; None until the row is built
    reason: Any  # ui.label; None until the row first has a reason to show
    error: Any  # ui.label; None until the row first has an error to show
    rule_visible: bool
    enabled: bool
    section: SectionControl | None = None

    @property
    def built(self) -> bool:
        return self.control is not None

    @property
    def shown(self) -> bool:
        return self.row is not None and self.row.visible

    @property
    def advanced(self) -> bool:
        return self.view.importance in ADVANCED_LEVELS


@dataclass
class SectionControl:
    title: str
    container: ui.element  # where the card goes
    card: ui.element | None = None  # None until one of its rows is first shown
    grid: ui.element | None = None  # the card's grid of rows
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
        container = ui.context.slot.parent
        for bundle in sections:
            section = SectionControl(bundle.title, container)
            for view in bundle.fields:
                ctl = FieldControl(view, None, None, None, None, view.visible, True, section)
                self.controls[view.name] = ctl
                section.names.append(view.name)
            self.sections.append(section)
            lazy = self.current_view is not None
            if lazy and not any(self._row_visible(self.controls[n]) for n in section.names):
                section.visible = False  # no card until one of its rows is first shown
                continue
            self._build_section(section)
            grid = section.grid
            assert grid is not None
            for view in bundle.fields:
                ctl = self.controls[view.name]
                if lazy and not self._row_visible(ctl):
                    continue  # built when first shown (_show_row)
                with grid:
                    ctl.row = self._new_row(view)
                self._build_row(ctl, view)
                ctl.row.visible = self._row_visible(ctl)
            self._sync_section(section)

    def _build_section(self, section: SectionControl) -> None:
        """The section's card, in the catalogue's order among the cards built so far."""
        with section.container:
            card = ui.card().classes("td-w td-section").mark(f"section-{section.title}")
        with card:
            ui.label(section.title).classes("text-subtitle1 text-weight-medium")
            grid = ui.element("div").classes("td-grid")  # one column, twelve from 768 px
        siblings = [s for s in self.sections if s.container is section.container]
        at = siblings.index(section)
        children = section.container.default_slot.children
        before = [s.card for s in siblings[:at] if s.card is not None]
        after = [s.card for s in siblings[at + 1 :] if s.card is not None]
        if before:
            card.move(target_index=children.index(before[-1]) + 1)
        elif after:
            card.move(target_index=children.index(after[0]))
        section.card, section.grid = card, grid

    @staticmethod
    def _new_row(view: FieldView) -> ui.element:
        span = 12 if view.widget == "textarea" else max(3, min(12, view.width))
        # One flex box that wraps: the label, flag and help icon share the first line, and the
        # control, hint and notes (each a full line) go below; no wrapper per line.
        row = (
            ui.element("div")
            .classes(f"td-field td-span-{span}")  # classes defined by the page layout
            .mark(f"row-{view.name}")
        )
        return row.props(f"data-field={view.name}")  # a stable hook for real-browser tests

    def _build_row(self, ctl: FieldControl, view: FieldView) -> None:
        assert ctl.row is not None
        with ctl.row:
            # The help is the label's tooltip (the browser's own), marked by an icon that the
            # page's CSS draws after the label: no element of its own.
            label = ui.label(view.label).classes("td-sm text-weight-medium td-help")
            label.props["title"] = view.help
            ui.label(view.flag).classes("td-xs td-mono text-grey-7 td-flag")
            if view.advanced:
                ui.badge(view.importance.value, color="grey-5").props("outline").classes("td-xs")
            control = self._render_control(view)
            control.classes("td-w").mark(f"field-{view.name}")
            if view.hint:
                ui.label(view.hint).classes("td-w td-xs text-grey-7")
        # The evaluator also reports hidden fields as disabled; only a shown one greys out.
        disabled = view.visible and not view.enabled
        if disabled:
            control.disable()
        ctl.view, ctl.control = view, control
        ctl.rule_visible, ctl.enabled = view.visible, not disabled
        if disabled and view.reason:
            self._note(ctl, "reason").text = view.reason
        if view.error:
            self._note(ctl, "error").text = view.error

    @staticmethod
    def _note(ctl: FieldControl, kind: str) -> Any:
        """The row's disabled-reason or error line, made when first needed: most rows never
        have one. The reason goes above the error, both below the control."""
        assert ctl.row is not None
        color = "text-warning" if kind == "reason" else "text-negative"
        with ctl.row:
            label = (
                ui.label().classes(f"td-w td-xs {color} td-{kind}").mark(f"{kind}-{ctl.view.name}")
            )
        if kind == "reason":
            if ctl.error is not None:
                label.move(target_index=ctl.row.default_slot.children.index(ctl.error))
            ctl.reason = label
        else:
            ctl.error = label
        return label

    def _show_row(self, ctl: FieldControl) -> None:
        """Bring the row's visibility in line; a row not built yet is built as it first shows."""
        visible = self._row_visible(ctl)
        if visible and ctl.row is None:
            assert self.current_view is not None and ctl.section is not None
            if ctl.section.grid is None:
                self._build_section(ctl.section)
            assert ctl.section.grid is not None
            with ctl.section.grid:
                ctl.row = self._new_row(ctl.view)
            ctl.row.move(target_index=self._grid_index(ctl))
            self._build_row(ctl, self.current_view(ctl.view.name))
        if ctl.row is not None:
            ctl.row.set_visibility(visible)

    def _grid_index(self, ctl: FieldControl) -> int:
        """Where the row goes among its section's rows built so far: the catalogue's order."""
        assert ctl.section is not None
        before = ctl.section.names[: ctl.section.names.index(ctl.view.name)]
        return sum(self.controls[n].row is not None for n in before)

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
            return number.props(f"dense outlined step={step} debounce=300").classes("td-w")
        if view.widget in ("select", "multiselect"):
            multiple = view.widget == "multiselect"
            options = dict(view.options)
            if not multiple and value not in options and value is not None:
                options[value] = str(value)
            select = ui.select(options, value=value, multiple=multiple, on_change=changed)
            select.props("dense outlined options-dense" + (" use-chips" if multiple else ""))
            return select.classes("td-w")
        if view.widget == "textarea":
            area = ui.textarea(value=value or "", placeholder=view.placeholder, on_change=changed)
            return area.props("dense outlined autogrow debounce=300").classes("td-w")
        if view.widget == "model_file":
            return self._render_model_file(view, value)
        box = ui.input(value=value or "", placeholder=view.placeholder, on_change=changed)
        box.props("dense outlined debounce=300").classes("td-w")
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
        box.props("dense outlined debounce=300").classes("td-w")
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
        facts = ui.label(model_facts_text(str(value or ""))).classes("td-w td-xs text-primary")
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
                if ctl.shown != self._row_visible(ctl):  # an advanced row may stay hidden
                    built = ctl.built
                    self._show_row(ctl)
                    assert ctl.row is not None
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
            if ctl.reason is None and reason_text:
                self._note(ctl, "reason")
            if ctl.reason is not None and (
                ctl.reason.text != reason_text or ctl.reason.visible != bool(reason_text)
            ):
                ctl.reason.text = reason_text
                ctl.reason.visible = bool(reason_text)
                touched.add(ctl.reason.id)
            if ctl.view.widget in ("select", "multiselect"):
                touched |= self._sync_options(ctl, state)
        for section in dirty_sections:
            if self._sync_section(section):
                assert section.card is not None  # (only a built card changes)
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
        visible = any(self.controls[n].shown for n in section.names)
        if visible == section.visible or section.card is None:
            return False
        section.visible = visible
        section.card.set_visibility(visible)
        return True

    def set_show_advanced(self, show: bool) -> int:
        self.show_advanced = show
        count = 0
        for ctl in self.controls.values():
            if ctl.advanced and ctl.shown != self._row_visible(ctl):
                self._show_row(ctl)
                count += 1
        for section in self.sections:
            count += self._sync_section(section)
        return count

    def set_error(self, name: str, message: str | None) -> bool:
        ctl = self.controls.get(name)
        if ctl is None or not ctl.built:  # built with the error of that moment
            return False
        if ctl.error is None:
            if not message:
                return False
            self._note(ctl, "error")
        elif ctl.error.text == (message or "") and ctl.error.visible == bool(message):
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
        return ctl is not None and not ctl.shown
