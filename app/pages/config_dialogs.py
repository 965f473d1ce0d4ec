"""The dialogs of the config toolbar: name, confirm, errors, import, export, diff against
the defaults and the command line. Each takes what it shows and a callback for what it does;
none touches the form or the files itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import events, ui

from app.pages.layout import transient_dialog
from app.services import configs as config_ops
from registry.config_io import ConfigFileError


def error_list(messages: list[str], marker: str) -> None:
    with ui.column().classes("gap-0 text-negative").mark(marker):
        for message in messages:
            ui.label(message).classes("text-sm")


def name_dialog(title: str, action: str, value: str, run: Callable[[str], str | None]) -> None:
    """Asks for a name; `run(name)` returns a problem to show, or None to close."""
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


def confirm(
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

        def accept() -> None:
            dialog.close()
            run()

        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=cancel).props("flat")
            ui.button(action, on_click=accept).props("color=negative").mark("confirm")
    dialog.open()


def errors_dialog(title: str, errors: list[str]) -> None:
    with transient_dialog() as dialog, ui.card().mark("errors-dialog"):
        ui.label(title).classes("text-h6 text-negative")
        error_list(errors, "load-errors")
        ui.label("Nothing was changed.").classes("text-sm")
        ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()


def import_dialog(on_import: Callable[[dict[str, Any], str], None]) -> None:
    """An uploaded or pasted TOML/JSON config, checked; `on_import(config, filename)` once it
    parses, else its errors in the dialog."""
    with (
        transient_dialog() as dialog,
        ui.card().classes("w-[40rem] max-w-full").mark("import-dialog"),
    ):
        ui.label("Import a config (TOML or JSON)").classes("text-h6")
        errors = ui.column().classes("w-full")

        def refuse(messages: list[str], heading: str | None = None) -> None:
            errors.clear()
            with errors:
                if heading:
                    ui.label(heading).classes("font-medium text-negative")
                error_list(messages, "import-errors")

        def apply(text: str, filename: str) -> None:
            try:
                config = config_ops.import_text(text, filename)
            except ConfigFileError as exc:
                refuse(exc.errors, f"{filename} was not imported:")
                return
            errors.clear()
            dialog.close()
            on_import(config, filename)

        async def uploaded(e: events.UploadEventArguments) -> None:
            oversized = config_ops.too_large(e.file.name, e.file.size())
            if oversized:
                refuse([oversized])
                return
            try:
                text = await e.file.text()
            except UnicodeDecodeError:
                refuse([f"{e.file.name} is not a UTF-8 text file"])
                return
            apply(text, e.file.name)

        limit_kib = config_ops.MAX_CONFIG_BYTES // 1024
        ui.upload(
            on_upload=uploaded,
            on_rejected=lambda: refuse(
                [f"That file was not imported: a config file may be at most {limit_kib:,} KiB"]
            ),
            auto_upload=True,
            max_file_size=config_ops.MAX_CONFIG_BYTES,
        ).props('accept=".toml,.json"').classes("w-full").mark("import-upload")
        ui.label("or paste the file's text:").classes("text-sm")
        fmt = ui.toggle({"toml": "TOML", "json": "JSON"}, value="toml").mark("import-format")
        text = ui.textarea().props("outlined autogrow").classes("w-full font-mono")
        text.mark("import-text")
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button(
                "Import", on_click=lambda: apply(text.value or "", f"pasted.{fmt.value}")
            ).mark("import-apply")
    dialog.open()


def export_dialog(config: dict[str, Any], base: str) -> None:
    with transient_dialog() as dialog, ui.card().mark("export-dialog"):
        ui.label("Export the config").classes("text-h6")
        ui.label("Exactly the values you set (sparse), plus the datasets.").classes("text-sm")
        with ui.row():
            for fmt in ("toml", "json"):
                ui.button(
                    f"{fmt.upper()} file",
                    icon="download",
                    on_click=lambda f=fmt: ui.download.content(
                        config_ops.export_text(config, f), f"{base}.{f}"
                    ),
                ).mark(f"export-{fmt}")
        ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()


def _column(name: str, label: str) -> dict[str, str]:
    return {"name": name, "label": label, "field": name, "align": "left"}


def diff_dialog(config: dict[str, Any], dataset_count: int) -> None:
    rows = config_ops.diff_against_defaults(config)
    with (
        transient_dialog() as dialog,
        ui.card().classes("w-[44rem] max-w-full").mark("diff-dialog"),
    ):
        ui.label("Differences from the defaults").classes("text-h6")
        if not rows and not dataset_count:
            ui.label("Everything is at its default.")
        if rows:
            ui.table(
                columns=[
                    _column("name", "Setting"),
                    _column("default", "Default"),
                    _column("value", "This config"),
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
        if dataset_count:
            ui.label(f"Datasets: {dataset_count} (none by default)")
        ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()


def _copy(text: str) -> None:
    ui.clipboard.write(text)
    ui.notify("Copied to the clipboard")


def command_dialog(config: dict[str, Any], overrides: dict[str, Any]) -> None:
    try:
        lines = config_ops.command_lines(config, overrides)
    except (ValueError, TypeError) as exc:
        ui.notify(f"No command line: {exc}", type="negative")
        return
    with (
        transient_dialog() as dialog,
        ui.card().classes("w-[48rem] max-w-full").mark("command-dialog"),
    ):
        ui.label("Run this config from a shell").classes("text-h6")
        for key, title in (("python", "python -m trainer"), ("accelerate", "accelerate launch")):
            with ui.row().classes("items-center w-full no-wrap"):
                ui.label(title).classes("font-medium")
                ui.space()
                ui.button(
                    "Copy", icon="content_copy", on_click=lambda t=lines[key]: _copy(t)
                ).props("flat dense no-caps").mark(f"copy-{key}")
            ui.code(lines[key], language="bash").classes("w-full").mark(f"command-{key}")
        ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()
