"""The config toolbar of the trainer page: new, save, save as, load, duplicate, rename, delete,
import, export, diff against defaults and copy as a command line.

Every failure is shown to the user and leaves both the form and the files unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nicegui import events, ui

from app.pages.layout import transient_dialog
from app.pages.preset_dialog import PresetActions
from app.services import configs as config_ops
from registry.config_io import ConfigFileError
from state.config_store import ConfigStoreError

if TYPE_CHECKING:
    from app.pages.trainer_page import TrainerPage


def _error_list(messages: list[str], marker: str) -> None:
    with ui.column().classes("gap-0 text-negative").mark(marker):
        for message in messages:
            ui.label(message).classes("text-sm")


class ConfigActions:
    def __init__(self, page: TrainerPage) -> None:
        self.page = page
        self.services = page.services
        self.form = page.form

    # ---- toolbar and selector ------------------------------------------------------------
    def render_toolbar(self) -> None:
        with ui.row().classes("gap-1 flex-wrap items-center").mark("config-toolbar"):
            for label, icon, handler in (
                ("New", "note_add", self.new_config),
                ("Save", "save", self.save),
                ("Save as", "save_as", self.save_as),
                ("Duplicate", "content_copy", self.duplicate),
                ("Rename", "drive_file_rename_outline", self.rename),
                ("Delete", "delete", self.delete),
                ("Import", "upload_file", self.import_dialog),
                ("Export", "download", self.export_dialog),
                ("Diff", "difference", self.diff_dialog),
                ("Command line", "terminal", self.command_dialog),
            ):
                ui.button(label, icon=icon, on_click=handler).props("flat dense no-caps").mark(
                    f"action-{label.lower().replace(' ', '-')}"
                )
            self.presets = PresetActions(self.page)
            self.presets.render()

    def render_selector(self) -> ui.select:
        self.selector = ui.select(
            self.services.configs.names(),
            value=self._selector_value(),
            label="Saved configs",
            on_change=lambda e: self._selected(e.value),
        )
        self.selector.props("dense outlined dark options-dense").classes("min-w-[12rem]").mark(
            "config-selector"
        )
        return self.selector

    def _selector_value(self) -> str | None:
        name = self.form.config_name
        return name if name in self.services.configs.names() else None

    def refresh_selector(self) -> None:
        self.page.suppress_selector = True
        try:
            self.selector.set_options(self.services.configs.names(), value=self._selector_value())
        finally:
            self.page.suppress_selector = False

    def _selected(self, name: str | None) -> None:
        if (
            self.page.suppress_selector
            or not name
            or (name == self.form.config_name and not self.form.dirty)
        ):
            return
        if self.form.dirty:
            self._confirm(
                f"Discard the unsaved changes and load {name!r}?",
                "Load",
                lambda: self.load(name),
                on_cancel=self.refresh_selector,
            )
        else:
            self.load(name)

    # ---- named configs -------------------------------------------------------------------
    def load(self, name: str) -> bool:
        try:
            config = self.services.configs.load(name)
        except ConfigFileError as exc:
            self._errors_dialog(f"{name!r} cannot be loaded", exc.errors)
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
            saved_name = self.services.configs.check_name(name)
            self.services.configs.save(saved_name, self.form.config(), overwrite=overwrite)
        except (ConfigStoreError, ValueError, TypeError) as exc:
            ui.notify(f"Not saved: {exc}", type="negative", multi_line=True)
            return False
        self.form.mark_saved(saved_name)
        self.page.after_save()
        self.refresh_selector()
        ui.notify(f"Saved {saved_name!r}", type="positive")
        return True

    def save_as(self) -> None:
        self._name_dialog("Save config as", "Save", self.form.config_name or "", self._save_as)

    def _save_as(self, name: str) -> str | None:
        try:
            name = self.services.configs.check_name(name)
        except ConfigStoreError as exc:
            return str(exc)
        if self.services.configs.exists(name) and name != self.form.config_name:
            return f"a config named {name!r} already exists: pick another name or load it and save"
        return None if self._write(name, overwrite=True) else "not saved"

    def duplicate(self) -> None:
        source = self.form.config_name
        if not source or not self.services.configs.exists(source):
            ui.notify("Save the config first; then it can be duplicated.", type="warning")
            return

        def run(new: str) -> str | None:
            try:
                new = self.services.configs.check_name(new)
                self.services.configs.duplicate(source, new)
            except (ConfigStoreError, ConfigFileError) as exc:
                return "; ".join(exc.errors) if isinstance(exc, ConfigFileError) else str(exc)
            self.refresh_selector()
            ui.notify(f"Duplicated {source!r} as {new!r}", type="positive")
            return None

        self._name_dialog(f"Duplicate {source!r} as", "Duplicate", f"{source} copy", run)

    def rename(self) -> None:
        old = self.form.config_name
        if not old or not self.services.configs.exists(old):
            ui.notify("Only a saved config can be renamed.", type="warning")
            return

        def run(new: str) -> str | None:
            try:
                new = self.services.configs.check_name(new)
                self.services.configs.rename(old, new)
            except ConfigStoreError as exc:
                return str(exc)
            self.form.config_name = new
            self.page.after_rename()
            self.refresh_selector()
            ui.notify(f"Renamed {old!r} to {new!r}", type="positive")
            return None

        self._name_dialog(f"Rename {old!r} to", "Rename", old, run)

    def delete(self) -> None:
        name = self.form.config_name
        if not name or not self.services.configs.exists(name):
            ui.notify("Only a saved config can be deleted.", type="warning")
            return

        def run() -> None:
            try:
                self.services.configs.delete(name)
            except ConfigStoreError as exc:
                ui.notify(str(exc), type="negative")
                return
            # The values stay in the form as an unsaved draft: deleting the file loses nothing typed.
            self.form.config_name = None
            self.form.dirty = True
            self.page.after_rename()
            self.refresh_selector()
            ui.notify(f"Deleted {name!r}; its values stay in the form, unsaved", type="info")

        self._confirm(f"Delete the saved config {name!r}?", "Delete", run)

    def new_config(self) -> None:
        def run() -> None:
            self.form.replace({}, None)
            self.refresh_selector()

        if self.form.dirty:
            self._confirm(
                "Discard the unsaved changes and start from the defaults?", "Discard", run
            )
        else:
            run()

    # ---- import / export -----------------------------------------------------------------
    def import_dialog(self) -> None:
        with (
            transient_dialog() as dialog,
            ui.card().classes("w-[40rem] max-w-full").mark("import-dialog"),
        ):
            ui.label("Import a config (TOML or JSON)").classes("text-h6")
            errors = ui.column().classes("w-full")

            def apply(text: str, filename: str) -> None:
                errors.clear()
                try:
                    config = config_ops.import_text(text, filename)
                except ConfigFileError as exc:
                    with errors:
                        ui.label(f"{filename} was not imported:").classes(
                            "font-medium text-negative"
                        )
                        _error_list(exc.errors, "import-errors")
                    return
                dialog.close()
                self.form.replace(config, None, dirty=True)
                self.refresh_selector()
                ui.notify(f"Imported {filename}; save it to keep it", type="positive")

            def refuse(message: str) -> None:
                errors.clear()
                with errors:
                    _error_list([message], "import-errors")

            async def uploaded(e: events.UploadEventArguments) -> None:
                oversized = config_ops.too_large(e.file.name, e.file.size())
                if oversized:
                    refuse(oversized)
                    return
                try:
                    text = await e.file.text()
                except UnicodeDecodeError:
                    refuse(f"{e.file.name} is not a UTF-8 text file")
                    return
                apply(text, e.file.name)

            limit_kib = config_ops.MAX_CONFIG_BYTES // 1024
            ui.upload(
                on_upload=uploaded,
                on_rejected=lambda: refuse(
                    f"That file was not imported: a config file may be at most {limit_kib:,} KiB"
                ),
                auto_upload=True,
                max_file_size=config_ops.MAX_CONFIG_BYTES,
            ).props('accept=".toml,.json"').classes("w-full").mark("import-upload")
            ui.label("or paste the file's text:").classes("text-sm")
            fmt = ui.toggle({"toml": "TOML", "json": "JSON"}, value="toml").mark("import-format")
            text = (
                ui.textarea()
                .props("outlined autogrow")
                .classes("w-full font-mono")
                .mark("import-text")
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button(
                    "Import", on_click=lambda: apply(text.value or "", f"pasted.{fmt.value}")
                ).mark("import-apply")
        dialog.open()

    def export_dialog(self) -> None:
        base = self.form.config_name or "config"
        with transient_dialog() as dialog, ui.card().mark("export-dialog"):
            ui.label("Export the config").classes("text-h6")
            ui.label("Exactly the values you set (sparse), plus the datasets.").classes("text-sm")
            with ui.row():
                for fmt in ("toml", "json"):
                    ui.button(
                        f"{fmt.upper()} file",
                        icon="download",
                        on_click=lambda f=fmt: ui.download.content(
                            config_ops.export_text(self.form.config(), f), f"{base}.{f}"
                        ),
                    ).mark(f"export-{fmt}")
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    def diff_dialog(self) -> None:
        rows = config_ops.diff_against_defaults(self.form.config())
        with (
            transient_dialog() as dialog,
            ui.card().classes("w-[44rem] max-w-full").mark("diff-dialog"),
        ):
            ui.label("Differences from the defaults").classes("text-h6")
            if not rows and not self.form.datasets:
                ui.label("Everything is at its default.")
            if rows:
                ui.table(
                    columns=[
                        {"name": "name", "label": "Setting", "field": "name", "align": "left"},
                        {
                            "name": "default",
                            "label": "Default",
                            "field": "default",
                            "align": "left",
                        },
                        {
                            "name": "value",
                            "label": "This config",
                            "field": "value",
                            "align": "left",
                        },
                    ],
                    rows=[
                        {
                            "name": r.name,
                            "default": repr(r.default),
                            "value": repr(r.value)
                            + (" (set, same as default)" if r.same_as_default else ""),
                        }
                        for r in rows
                    ],
                    row_key="name",
                ).props("dense flat").classes("w-full")
            if self.form.datasets:
                ui.label(f"Datasets: {len(self.form.datasets)} (none by default)")
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    def command_dialog(self) -> None:
        overrides = self.services.prefs.prefs.accelerate_overrides
        try:
            lines = config_ops.command_lines(self.form.config(), overrides)
        except (ValueError, TypeError) as exc:
            ui.notify(f"No command line: {exc}", type="negative")
            return
        with (
            transient_dialog() as dialog,
            ui.card().classes("w-[48rem] max-w-full").mark("command-dialog"),
        ):
            ui.label("Run this config from a shell").classes("text-h6")
            for key, title in (
                ("python", "python -m trainer"),
                ("accelerate", "accelerate launch"),
            ):
                with ui.row().classes("items-center w-full no-wrap"):
                    ui.label(title).classes("font-medium")
                    ui.space()
                    ui.button(
                        "Copy", icon="content_copy", on_click=lambda t=lines[key]: self._copy(t)
                    ).props("flat dense no-caps").mark(f"copy-{key}")
                ui.code(lines[key], language="bash").classes("w-full").mark(f"command-{key}")
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    @staticmethod
    def _copy(text: str) -> None:
        ui.clipboard.write(text)
        ui.notify("Copied to the clipboard")

    # ---- small dialogs -------------------------------------------------------------------
    def _name_dialog(
        self, title: str, action: str, value: str, run: Callable[[str], str | None]
    ) -> None:
        with transient_dialog() as dialog, ui.card().mark("name-dialog"):
            ui.label(title).classes("text-h6")
            name = ui.input("Name", value=value).props("outlined autofocus").mark("name-input")
            error = ui.label().classes("text-negative text-sm").mark("name-error")

            def submit() -> None:
                problem = run(name.value or "")
                if problem:
                    error.text = problem
                else:
                    dialog.close()

            name.on("keydown.enter", submit)
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button(action, on_click=submit).mark("name-submit")
        dialog.open()

    def _confirm(
        self,
        question: str,
        action: str,
        run: Callable[[], Any],
        on_cancel: Callable[[], Any] | None = None,
    ) -> None:
        with transient_dialog() as dialog, ui.card().mark("confirm-dialog"):
            ui.label(question)

            def cancel() -> None:
                dialog.close()
                if on_cancel:
                    on_cancel()

            def confirm() -> None:
                dialog.close()
                run()

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=cancel).props("flat")
                ui.button(action, on_click=confirm).props("color=negative").mark("confirm")
        dialog.open()

    def _errors_dialog(self, title: str, errors: list[str]) -> None:
        with transient_dialog() as dialog, ui.card().mark("errors-dialog"):
            ui.label(title).classes("text-h6 text-negative")
            _error_list(errors, "load-errors")
            ui.label("Nothing was changed.").classes("text-sm")
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()
