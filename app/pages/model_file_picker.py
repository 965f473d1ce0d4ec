"""Choosing a model file on the server, and what the chosen file is.

The picker browses folders and model files (.safetensors, and the pickle kinds, which
validation refuses unless allowed) inside the allowed roots, like the folder picker; after a
file is chosen the field shows what its safetensors header says (family, UNet parameters,
v-prediction, size) through registry.model_files: a header read, never torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nicegui import ui

from app.pages.layout import transient_dialog
from app.services.folder_browser import FolderAccessError, list_folders, within
from registry.model_files import MODEL_FILE_SUFFIXES, ModelFileError, inspect_model_file


def model_files_in(folder: Path) -> list[Path]:
    """The model files directly in `folder`, by name."""
    try:
        files = [
            p
            for p in folder.iterdir()
            if p.is_file()
            and p.suffix.lower() in MODEL_FILE_SUFFIXES
            and not p.name.startswith(".")
        ]
    except OSError:
        return []
    return sorted(files, key=lambda p: p.name.lower())


def model_facts_text(value: str) -> str:
    """One line of what the file at `value` is ("" when it is not a file: a folder or Hub id)."""
    path = Path(value.strip()).expanduser() if value and value.strip() else None
    if path is None or not path.is_file():
        return ""
    try:
        facts = inspect_model_file(path, allow_pickle=True)
    except ModelFileError as exc:
        return f"Not usable: {exc}"
    if facts.kind == "unknown" and facts.tensors == 0:
        return f"Pickle checkpoint ({facts.summary()['Size']}): contents not read"
    return " · ".join(f"{k}: {v}" for k, v in facts.summary().items())


def pick_model_file(current: str, on_pick: Callable[[str], None]) -> None:
    from app.services.container import get_services

    open_model_file_picker(current or "", get_services().allowed_roots(), on_pick)


def open_model_file_picker(
    current: str, roots: list[Path], on_pick: Callable[[str], None]
) -> ui.dialog:
    for root in roots:
        root.mkdir(parents=True, exist_ok=True)
    here = Path(current).expanduser() if current else None
    if here is not None and here.is_file():
        here = here.parent
    start = here if here is not None and within(here, roots) and here.is_dir() else roots[0]

    with (
        transient_dialog() as dialog,
        ui.card().classes("w-[40rem] max-w-full").mark("model-file-picker"),
    ):
        ui.label("Choose a model file").classes("text-h6")
        with ui.row().classes("gap-1 flex-wrap"):
            for root in roots:
                ui.button(str(root), icon="home", on_click=lambda r=root: show(r)).props(
                    "dense flat no-caps"
                )
        where = ui.label().classes("font-mono text-sm break-all").mark("model-picker-path")
        message = ui.label().classes("text-negative text-sm")
        listing = ui.column().classes("gap-0 w-full max-h-80 overflow-auto")
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")

    def show(path: Path) -> None:
        try:
            result = list_folders(path, roots)
        except FolderAccessError as exc:
            message.text = str(exc)
            return
        message.text = ""
        where.text = str(result.current)
        listing.clear()
        files = model_files_in(result.current)
        with listing:
            if result.parent is not None:
                ui.item("..", on_click=lambda p=result.parent: show(p)).props("dense clickable")
            for folder in result.folders:
                with (
                    ui.item(on_click=lambda p=folder: show(p))
                    .props("dense clickable")
                    .mark(f"folder-{folder.name}")
                ):
                    ui.icon("folder").classes("mr-2 text-grey-7")
                    ui.label(folder.name)
            for file in files:
                with (
                    ui.item(on_click=lambda p=file: choose(p))
                    .props("dense clickable")
                    .mark(f"model-file-{file.name}")
                ):
                    ui.icon("description").classes("mr-2 text-grey-7")
                    ui.label(file.name)
            if not result.folders and not files:
                ui.label("(no folders or model files here)").classes("text-grey-7 text-sm")

    def choose(file: Path) -> None:
        on_pick(str(file.resolve()))
        dialog.close()

    show(start)
    dialog.open()
    return dialog
