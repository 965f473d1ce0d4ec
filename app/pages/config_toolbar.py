"""The config toolbar of the trainer page and its saved-config selector: new, save, save as,
load, duplicate, rename, delete, import, export, diff against defaults, copy as a command line
and presets. Its dialogs are app.pages.config_dialogs.

Every failure is shown to the user and leaves both the form and the files unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from app.pages import config_dialogs as dialogs
from app.pages.preset_dialog import PresetActions
from app.services.container import Services
from app.services.form_state import FormState
from registry.config_io import ConfigFileError
from state.config_store import ConfigStoreError


def _marker(label: str) -> str:
    return f"action-{label.lower().replace(' ', '-')}"


class ConfigToolbar:
    """`on_saved()` runs after the config's name or saved state changed (the page's header)."""

    def __init__(self, services: Services, form: FormState, on_saved: Callable[[], None]) -> None:
        self.services = services
        self.configs = services.configs
        self.form = form
        self.on_saved = on_saved
        self._suppress_selector = False

    # ---- toolbar and selector ------------------------------------------------------------
    def render_toolbar(self) -> None:
        """New, Save, Save as and the presets as buttons; the other actions in a "More" menu
        whose items are made when it first opens (a lighter first load)."""
        with ui.row().classes("td-g1 items-center").mark("config-toolbar"):
            for label, icon, handler in (
                ("New", "note_add", self.new_config),
                ("Save", "save", self.save),
                ("Save as", "save_as", self.save_as),
            ):
                ui.button(label, icon=icon, on_click=handler).props("flat dense no-caps").mark(
                    _marker(label)
                )
            self.more = (
                ui.button("More", icon="more_horiz", on_click=self.open_more)
                .props("flat dense no-caps")
                .mark("action-more")
            )
            self.more_menu: ui.menu | None = None
            self.presets = PresetActions(self.form)
            self.presets.render()

    def open_more(self) -> None:
        """Build and open the menu on the first click; later clicks toggle it in the browser."""
        if self.more_menu is None:
            with self.more, ui.menu() as self.more_menu:
                for label, icon, handler in (
                    ("Duplicate", "content_copy", self.duplicate),
                    ("Rename", "drive_file_rename_outline", self.rename),
                    ("Delete", "delete", self.delete),
                    ("Import", "upload_file", self.import_config),
                    ("Export", "download", self.export),
                    ("Diff", "difference", self.diff),
                    ("Command line", "terminal", self.command_line),
                ):
                    with ui.menu_item(on_click=handler).mark(_marker(label)):
                        with ui.item_section().props("avatar"):
                            ui.icon(icon)
                        ui.item_section(label)
            self.more_menu.open()

    def render_selector(self) -> ui.select:
        self.selector = ui.select(
            self.configs.names(),
            value=self._selector_value(),
            label="Saved configs",
            on_change=lambda e: self._selected(e.value),
        )
        self.selector.props("dense outlined dark options-dense").style("min-width: 12rem").mark(
            "config-selector"
        )
        return self.selector

    def _selector_value(self) -> str | None:
        name = self.form.config_name
        return name if name in self.configs.names() else None

    def refresh_selector(self) -> None:
        self._suppress_selector = True
        try:
            self.selector.set_options(self.configs.names(), value=self._selector_value())
        finally:
            self._suppress_selector = False

    def _selected(self, name: str | None) -> None:
        if (
            self._suppress_selector
            or not name
            or (name == self.form.config_name and not self.form.dirty)
        ):
            return
        if self.form.dirty:
            dialogs.confirm(
                f"Discard the unsaved changes and load {name!r}?",
                "Load",
                lambda: self.load(name),
                on_cancel=self.refresh_selector,
            )
        else:
            self.load(name)

    def _saved(self) -> None:
        self.on_saved()
        self.refresh_selector()

    # ---- named configs -------------------------------------------------------------------
    def load(self, name: str) -> bool:
        try:
            config = self.configs.load(name)
        except ConfigFileError as exc:
            dialogs.errors_dialog(f"{name!r} cannot be loaded", exc.errors)
            self.refresh_selector()
            return False
        except ConfigStoreError as exc:
            ui.notify(str(exc), type="negative")
            self.refresh_selector()
            return False
        self.form.replace(config, name)
        ui.notify(f"Loaded {name!r}", type="positive")
        return True

    def save(self) -> None:
        if not self.form.config_name:
            self.save_as()
            return
        self._write(self.form.config_name, overwrite=True)

    def _write(self, name: str, *, overwrite: bool) -> bool:
        try:
            saved_name = self.configs.check_name(name)
            self.configs.save(saved_name, self.form.config(), overwrite=overwrite)
        except (ConfigStoreError, ValueError, TypeError) as exc:
            ui.notify(f"Not saved: {exc}", type="negative", multi_line=True)
            return False
        self.form.mark_saved(saved_name)
        self._saved()
        ui.notify(f"Saved {saved_name!r}", type="positive")
        return True

    def save_as(self) -> None:
        dialogs.name_dialog("Save config as", "Save", self.form.config_name or "", self._save_as)

    def _save_as(self, name: str) -> str | None:
        try:
            name = self.configs.check_name(name)
        except ConfigStoreError as exc:
            return str(exc)
        if self.configs.exists(name) and name != self.form.config_name:
            return f"a config named {name!r} already exists: pick another name or load it and save"
        return None if self._write(name, overwrite=True) else "not saved"

    def duplicate(self) -> None:
        source = self.form.config_name
        if not source or not self.configs.exists(source):
            ui.notify("Save the config first; then it can be duplicated.", type="warning")
            return

        def run(new: str) -> str | None:
            try:
                new = self.configs.check_name(new)
                self.configs.duplicate(source, new)
            except (ConfigStoreError, ConfigFileError) as exc:
                return "; ".join(exc.errors) if isinstance(exc, ConfigFileError) else str(exc)
            self.refresh_selector()
            ui.notify(f"Duplicated {source!r} as {new!r}", type="positive")
            return None

        dialogs.name_dialog(f"Duplicate {source!r} as", "Duplicate", f"{source} copy", run)

    def rename(self) -> None:
        old = self.form.config_name
        if not old or not self.configs.exists(old):
            ui.notify("Only a saved config can be renamed.", type="warning")
            return

        def run(new: str) -> str | None:
            try:
                new = self.configs.check_name(new)
                self.configs.rename(old, new)
            except ConfigStoreError as exc:
                return str(exc)
            self.form.config_name = new
            self._saved()
            ui.notify(f"Renamed {old!r} to {new!r}", type="positive")
            return None

        dialogs.name_dialog(f"Rename {old!r} to", "Rename", old, run)

    def delete(self) -> None:
        name = self.form.config_name
        if not name or not self.configs.exists(name):
            ui.notify("Only a saved config can be deleted.", type="warning")
            return

        def run() -> None:
            try:
                self.configs.delete(name)
            except ConfigStoreError as exc:
                ui.notify(str(exc), type="negative")
                return
            # The values stay in the form as an unsaved draft: deleting the file loses nothing typed.
            self.form.config_name = None
            self.form.dirty = True
            self._saved()
            ui.notify(f"Deleted {name!r}; its values stay in the form, unsaved", type="info")

        dialogs.confirm(f"Delete the saved config {name!r}?", "Delete", run)

    def new_config(self) -> None:
        def run() -> None:
            self.form.replace({}, None)
            self.refresh_selector()

        if self.form.dirty:
            dialogs.confirm(
                "Discard the unsaved changes and start from the defaults?", "Discard", run
            )
        else:
            run()

    # ---- import / export -----------------------------------------------------------------
    def import_config(self) -> None:
        def imported(config: dict[str, Any], filename: str) -> None:
            self.form.replace(config, None, dirty=True)
            self.refresh_selector()
            ui.notify(f"Imported {filename}; save it to keep it", type="positive")

        dialogs.import_dialog(imported)

    def export(self) -> None:
        dialogs.export_dialog(self.form.config(), self.form.config_name or "config")

    def diff(self) -> None:
        dialogs.diff_dialog(self.form.config(), len(self.form.datasets))

    def command_line(self) -> None:
        overrides = self.services.prefs.prefs.accelerate_overrides
        dialogs.command_dialog(self.form.config(), overrides)
