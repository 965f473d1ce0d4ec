"""The monitor's samples grid: one row per prompt, one column per validation step, so a person
sees the training take hold along a row (the same prompt and seed at every step).

`build_grid` is the pure model (rows, step columns, the images of each cell) from the run's
`ValidationStep`s; `draw_grid` draws it with NiceGUI. Rows are keyed by a prompt library
entry's name, else by the prompt text, in the order they first rendered; a cell holds that
prompt's images at that step (num_validation_images of them), or nothing when the prompt was
not rendered then (a library edited mid-run)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nicegui import ui

from app.services.run_service import ValidationStep

CELL_PX = 128  # thumbnails: the enlarged view shows the image at full size


@dataclass(frozen=True, slots=True)
class GridRow:
    key: str
    name: str  # the prompt library's name ("" for a validation_prompt line)
    prompt: str


@dataclass(slots=True)
class SampleGrid:
    rows: list[GridRow] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    cells: dict[tuple[str, int], list[dict[str, str]]] = field(default_factory=dict)

    def cell(self, row: GridRow, step: int) -> list[dict[str, str]]:
        return self.cells.get((row.key, step), [])


def build_grid(validations: Sequence[ValidationStep]) -> SampleGrid:
    grid = SampleGrid()
    known: set[str] = set()
    for group in sorted(validations, key=lambda g: g.step):
        grid.steps.append(group.step)
        for image in group.images:
            name = image.get("name", "")
            prompt = image.get("prompt", "")
            key = f"name:{name}" if name else f"prompt:{prompt}"
            if key not in known:
                known.add(key)
                grid.rows.append(GridRow(key, name, prompt))
            grid.cells.setdefault((key, group.step), []).append(image)
    return grid


def draw_grid(grid: SampleGrid, file_url: Callable[[str], str]) -> None:
    """The grid inside the current NiceGUI container, oldest step first (it scrolls sideways
    when wide)."""
    if not grid.steps:
        ui.label("No validation images yet.").classes("text-sm text-grey-7").mark("no-images")
        return
    steps = grid.steps
    columns = f"minmax(10rem, 16rem) repeat({len(steps)}, max-content)"
    with (
        ui.element("div").classes("w-full overflow-x-auto"),
        ui.grid(columns=columns).classes("gap-2 items-start").mark("samples-grid"),
    ):
        ui.label("prompt").classes("text-sm font-medium")
        for step in steps:
            ui.label(f"step {step}").classes("text-sm font-medium").mark(f"grid-step-{step}")
        for index, row in enumerate(grid.rows):
            with ui.column().classes("gap-0").mark(f"grid-row-{index}"):
                if row.name:
                    ui.label(row.name).classes("text-sm font-medium")
                ui.label(row.prompt).classes("text-xs text-grey-8 break-words")
            for step in steps:
                images = grid.cell(row, step)
                with ui.row().classes("gap-1 no-wrap").mark(f"grid-cell-{index}-{step}"):
                    for image in images:
                        url = file_url(image["path"])
                        caption = _caption(row, image, step)
                        ui.image(url).classes(
                            f"w-[{CELL_PX}px] h-[{CELL_PX}px] cursor-pointer"
                        ).mark("validation-image").tooltip(caption).on(
                            "click", lambda _, u=url, c=caption: _enlarge(u, c)
                        )


def _caption(row: GridRow, image: dict[str, str], step: int) -> str:
    parts = [f"step {step}"]
    if row.name:
        parts.append(row.name)
    if image.get("seed"):
        parts.append(f"seed {image['seed']}")
    return " · ".join(parts) + f": {row.prompt}"


def _enlarge(url: str, caption: str) -> None:
    with ui.dialog() as dialog, ui.card().mark("enlarged"):
        ui.image(url).classes("w-[32rem] max-w-full")
        ui.label(caption).classes("text-sm")
        ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()


__all__ = ["GridRow", "SampleGrid", "build_grid", "draw_grid"]
