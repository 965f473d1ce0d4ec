"""Browse one dataset folder: a paged thumbnail grid with captions editable in place.

Thumbnails come from /api/datasets/thumbnail with the image's version in the URL, so the
browser caches them; only one page (100 images) is in the page at a time.
"""

from __future__ import annotations

from pathlib import Path

from nicegui import run, ui

from app.services.captions import CaptionError, write_caption
from app.services.dataset_browser import ImageFilter, ImageItem, ImagePage, list_images
from app.services.dataset_links import image_url, thumbnail_url
from app.services.datasets import DatasetService
from app.services.thumbnails import thumbnail_key

PAGE_SIZE = 100


class DatasetGallery:
    def __init__(
        self, service: DatasetService, folder: Path, caption_extension: str = ".txt"
    ) -> None:
        self.service = service
        self.folder = folder
        self.extension = caption_extension
        self.filter = ImageFilter()
        self.page_no = 1
        self.page: ImagePage | None = None
        self.saved: dict[str, str] = {}  # image name -> caption text last written or read
        self.boxes: dict[str, list[ui.textarea]] = {}  # the tile's box and the large view's

    def open(self) -> ui.dialog:
        with (
            ui.dialog().props("maximized") as self.dialog,
            ui.card().classes("w-full h-full").mark("gallery"),
        ):
            with ui.row().classes("items-center w-full gap-2"):
                ui.label(str(self.folder)).classes("text-h6 font-mono break-all")
                ui.space()
                ui.button(icon="close", on_click=self.dialog.close).props("flat round").mark(
                    "gallery-close"
                )
            with ui.row().classes("items-end w-full gap-3 flex-wrap"):
                ui.switch(
                    "Only without caption", on_change=lambda e: self._set(no_caption=bool(e.value))
                ).mark("filter-no-caption")
                ui.input(
                    "Caption or file name contains",
                    on_change=lambda e: self._set(text=e.value or ""),
                ).props("dense outlined clearable debounce=300").mark("filter-text")
                ui.number(
                    "Shorter side ≥", min=0, on_change=lambda e: self._set(min_side=_side(e.value))
                ).props("dense outlined debounce=300").classes("w-36").mark("filter-min-side")
                ui.number(
                    "Shorter side ≤", min=0, on_change=lambda e: self._set(max_side=_side(e.value))
                ).props("dense outlined debounce=300").classes("w-36").mark("filter-max-side")
                self.count = ui.label().classes("text-sm text-grey-7").mark("gallery-count")
            self.pager = ui.pagination(
                1, 1, direction_links=True, on_change=lambda e: self._go(int(e.value or 1))
            )
            self.pager.props("max-pages=9 boundary-numbers").mark("gallery-pager")
            self.grid = (
                ui.element("div")
                .classes("grid gap-2 w-full")
                .style("grid-template-columns: repeat(auto-fill, minmax(180px, 1fr))")
            )
        self.dialog.open()
        ui.timer(0, self.refresh, once=True)
        return self.dialog

    def _set(self, **change: object) -> None:
        values = {**self.filter.__dict__, **change}
        self.filter = ImageFilter(**values)
        self.page_no = 1
        ui.timer(0, self.refresh, once=True)

    def _go(self, page: int) -> None:
        if page != self.page_no:
            self.page_no = page
            ui.timer(0, self.refresh, once=True)

    async def refresh(self) -> None:
        try:
            page = await run.io_bound(
                list_images,
                self.folder,
                self.filter,
                self.page_no,
                PAGE_SIZE,
                probes=self.service.probes,
                captions=self.service.captions,
                caption_extension=self.extension,
            )
        except OSError as exc:
            self.count.text = f"{self.folder} cannot be read: {exc.strerror}"
            return
        if page is None:  # the server is shutting down
            return
        self.page = page
        self.count.text = f"{page.total} of {page.folder_total} images"
        self.pager.max = page.pages
        self.pager.value = page.page
        self.grid.clear()
        self.boxes.clear()
        with self.grid:
            for item in page.items:
                self._tile(item)

    def _tile(self, item: ImageItem) -> None:
        self.saved[item.name] = item.caption or ""
        with ui.card().classes("p-1 gap-1").mark(f"tile-{item.name}"):
            if item.probe.ok:
                try:
                    src = thumbnail_url(item.path, thumbnail_key(item.path))
                except OSError:
                    src = thumbnail_url(item.path)
                ui.image(src).classes("w-full h-40 cursor-pointer").props(
                    "fit=contain loading=lazy"
                ).on("click", lambda i=item: self._open_large(i)).mark(f"thumb-{item.name}")
            else:
                with ui.column().classes("w-full h-40 items-center justify-center bg-grey-3"):
                    ui.icon("broken_image", size="lg").classes("text-negative")
                    ui.label(item.probe.error or "unreadable").classes(
                        "text-xs text-negative text-center"
                    )
            ui.label(f"{item.name} · {item.size_text}").classes("text-xs text-grey-7 truncate")
            self._caption_box(item)

    def _caption_box(self, item: ImageItem) -> ui.textarea:
        box = ui.textarea(value=item.caption or "", placeholder="no caption").props(
            "dense outlined autogrow"
        )
        box.classes("w-full text-sm").mark(f"caption-{item.name}")
        box.on("blur", lambda _: self._save(item, box))
        self.boxes.setdefault(item.name, []).append(box)
        return box

    async def _save(self, item: ImageItem, box: ui.textarea) -> None:
        text = (box.value or "").strip()
        if text == self.saved.get(item.name, ""):
            return
        try:
            await run.io_bound(write_caption, item.path, text, self.extension)
        except CaptionError as exc:
            ui.notify(str(exc), type="negative")
            return
        self.saved[item.name] = text
        for other in self.boxes.get(item.name, []):
            if other is not box and not other.is_deleted:
                other.value = text
        ui.notify(f"Caption of {item.name} saved", type="positive")

    def _open_large(self, item: ImageItem) -> None:
        with ui.dialog() as large, ui.card().classes("max-w-[90vw]").mark("large-image"):
            ui.image(image_url(item.path)).classes("max-h-[75vh] min-w-[50vw]").props("fit=contain")
            ui.label(f"{item.name} · {item.size_text}").classes("text-sm")
            self._caption_box(item)
            ui.button("Close", on_click=large.close).props("flat")
        large.open()


def _side(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and value > 0 else None
