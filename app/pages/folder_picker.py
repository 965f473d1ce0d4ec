"""A folder picker that browses the server's disk inside the allowed roots, in the page.

It never opens a dialog on the server's own display (useless when the browser is remote).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nicegui import ui

from app.pages.layout import transient_dialog
from app.services.folder_browser import FolderAccessError, list_folders, within


def open_folder_picker(
    current: str, roots: list[Path], on_pick: Callable[[str], None]
) -> ui.dialog:
    for root in roots:  # our own data folders: create them so there is something to browse
        root.mkdir(parents=True, exist_ok=True)
    start = (
        Path(current)
        if current and within(Path(current), roots) and Path(current).is_dir()
        else roots[0]
    )
    state = {"path": start}

    with (
        transient_dialog() as dialog,
        ui.card().classes("w-[36rem] max-w-full").mark("folder-picker"),
    ):
        ui.label("Choose a folder").classes("text-h6")
        with ui.row().classes("gap-1 flex-wrap"):
            for root in roots:
                ui.button(str(root), icon="home", on_click=lambda r=root: show(r)).props(
                    "dense flat no-caps"
                )
        where = ui.label().classes("font-mono text-sm break-all").mark("picker-path")
        message = ui.label().classes("text-negative text-sm")
        listing = ui.column().classes("gap-0 w-full max-h-80 overflow-auto")
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Use this folder", on_click=lambda: choose()).mark("picker-choose")

    def show(path: Path) -> None:
        try:
            result = list_folders(path, roots)
        except FolderAccessError as exc:
            message.text = str(exc)
            return
        message.text = ""
        state["path"] = result.current
        where.text = str(result.current)
        listing.clear()
        with listing:
            if result.parent is not None:
                ui.item("..", on_click=lambda p=result.parent: show(p)).props("dense clickable")
            for folder in result.folders:
                ui.item(folder.name, on_click=lambda p=folder: show(p)).props(
                    "dense clickable"
                ).mark(f"folder-{folder.name}")
            if not result.folders:
                ui.label("(no sub-folders)").classes("text-grey-7 text-sm")

    def choose() -> None:
        on_pick(str(state["path"]))
        dialog.close()

    show(start)
    dialog.open()
    return dialog
