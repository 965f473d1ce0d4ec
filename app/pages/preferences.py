"""The preferences dialog: theme, datasets and output roots, cached accelerate settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nicegui import ui
from pydantic import ValidationError

from app.pages.layout import transient_dialog
from app.services.container import Services
from state.web_ui_state import ACCELERATE_OVERRIDE_WHITELIST, filter_accelerate_overrides


def open_preferences(
    services: Services,
    current_values: Callable[[], dict[str, Any]],
    on_theme: Callable[[str], None],
    on_saved: Callable[[], None],
) -> ui.dialog:
    store = services.prefs
    prefs = store.prefs
    with (
        transient_dialog() as dialog,
        ui.card().classes("w-[36rem] max-w-full").mark("prefs-dialog"),
    ):
        ui.label("Preferences").classes("text-h6")
        ui.label(f"Stored in {store.path}").classes("text-xs text-grey-7 break-all")
        theme = ui.toggle(
            {"light": "Light", "dark": "Dark", "auto": "Auto"}, value=prefs.theme
        ).mark("prefs-theme")
        datasets_root = (
            ui.input("Datasets root", value=prefs.datasets_root)
            .props("outlined dense")
            .classes("w-full")
        )
        datasets_root.mark("prefs-datasets-root")
        output_root = (
            ui.input("Output root", value=prefs.output_root)
            .props("outlined dense")
            .classes("w-full")
        )
        output_root.mark("prefs-output-root")

        overrides = _overrides_section(dict(prefs.accelerate_overrides), current_values)
        error = ui.label().classes("text-negative text-sm").mark("prefs-error")

        def save() -> None:
            roots = {
                "datasets_root": datasets_root.value.strip(),
                "output_root": output_root.value.strip(),
            }
            for key, value in roots.items():
                if not value or not Path(value).expanduser().is_absolute():
                    error.text = (
                        f"{key.replace('_', ' ').capitalize()} must be an absolute folder path."
                    )
                    return
            try:
                store.update(theme=theme.value, accelerate_overrides=overrides, **roots)
            except (ValidationError, OSError) as exc:
                error.text = f"Not saved: {exc}"
                return
            on_theme(theme.value)
            on_saved()
            dialog.close()
            ui.notify("Preferences saved", type="positive")

        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Save", on_click=save).mark("prefs-save")
    dialog.open()
    return dialog


def _overrides_section(
    overrides: dict[str, Any], current_values: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The cached accelerate settings, with buttons to take them from the config or clear
    them; the returned dict is what Save stores."""
    ui.label("Cached accelerate settings").classes("font-medium mt-2")
    ui.label(
        "Used for the 'accelerate launch' command line. Only launcher settings are kept: "
        + ", ".join(sorted(ACCELERATE_OVERRIDE_WHITELIST))
    ).classes("text-xs text-grey-7")
    cached = ui.label().classes("font-mono text-xs break-all").mark("prefs-overrides")

    def show_overrides() -> None:
        cached.text = ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "(none)"

    def remember() -> None:
        overrides.clear()
        overrides.update(filter_accelerate_overrides(current_values()))
        show_overrides()

    def forget() -> None:
        overrides.clear()
        show_overrides()

    show_overrides()
    with ui.row().classes("gap-1"):
        ui.button("Remember this config's settings", on_click=remember).props(
            "flat dense no-caps"
        ).mark("prefs-remember")
        ui.button("Clear", on_click=forget).props("flat dense no-caps")
    return overrides
