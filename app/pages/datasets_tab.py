"""The Datasets tab: the config's dataset entries, each edited with the registry's
dataset-entry fields (FieldsUI + the registry evaluator, scope dataset),
plus folder picking inside the datasets root, browsing, scanning and the demo dataset.

`render_datasets_tab(form, services)` renders the "datasets" tab (the trainer page calls it).
Every change goes through `form.set_datasets`, so dirty state, the draft and the run bar's
problems follow as for any other field.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from nicegui import run, ui

from app.pages.dataset_gallery import DatasetGallery
from app.pages.dataset_scan_view import render_scan_result
from app.pages.fields_ui import FieldsUI
from app.pages.folder_picker import open_folder_picker
from app.services.container import Services
from app.services.dataset_browser import OutsideRootError
from app.services.dataset_scan import ScanResult, combined_steps_per_epoch
from app.services.datasets import DatasetService, dataset_service, scan_warnings
from app.services.field_views import describe
from app.services.form_state import FormState
from app.services.tabs import DATASETS_TAB, SectionBundle
from registry.catalogue import DATASET_FIELDS, sections_of
from registry.coercion import BLANK, BLANK_MESSAGE, from_widget
from registry.evaluator import Evaluator, FieldState
from registry.field import Scope
from registry.validation import check_value, validate_config

DEMO_FOLDER = "demo"
KIND_LABELS = {"regularization": "regularization", "eval": "evaluation only"}


def dataset_sections(
    entry: dict[str, Any], states: dict[str, FieldState], errors: dict[str, str]
) -> tuple[SectionBundle, ...]:
    """The entry's fields as the UI part's section bundles, in the registry's order."""
    return tuple(
        SectionBundle(
            section,
            tuple(
                describe(
                    spec,
                    entry[spec.name] if spec.name in entry else copy.deepcopy(spec.default),
                    states.get(spec.name),
                    errors.get(spec.name),
                )
                for spec in fields
            ),
        )
        for section, fields in sections_of(DATASETS_TAB, Scope.DATASET)
    )


class EntryCard:
    """One dataset entry: header, actions, its fields and its latest scan."""

    def __init__(self, tab: DatasetsTab, index: int) -> None:
        self.tab = tab
        self.index = index
        self.evaluator = Evaluator(tab.services.platform, Scope.DATASET)
        self.states = self.evaluator.evaluate(self.entry)
        self.blanks: set[str] = set()

    @property
    def entry(self) -> dict[str, Any]:
        return self.tab.form.datasets[self.index]

    def title(self) -> str:
        entry = self.entry
        name = (
            entry.get("name")
            or Path(str(entry.get("path") or "")).name
            or f"dataset {self.index + 1}"
        )
        kind = KIND_LABELS.get(str(entry.get("kind") or "train"), "")
        name = f"{name} · {kind}" if kind else name  # training datasets need no label
        return name if entry.get("enabled", True) else f"{name} (disabled)"

    def build(self) -> None:
        i, count = self.index, len(self.tab.form.datasets)
        with ui.card().classes("w-full").mark(f"dataset-{i}"):
            with ui.row().classes("items-center w-full gap-1"):
                self.title_label = (
                    ui.label(self.title())
                    .classes("text-subtitle1 font-medium")
                    .mark(f"dataset-{i}-title")
                )
                ui.space()
                self._action("search", "Scan", f"dataset-{i}-scan", self.scan)
                self._action("photo_library", "Browse images", f"dataset-{i}-browse", self.browse)
                self._action(
                    "arrow_upward",
                    "Move up",
                    f"dataset-{i}-up",
                    lambda: self.tab.move(i, -1),
                    i == 0,
                )
                self._action(
                    "arrow_downward",
                    "Move down",
                    f"dataset-{i}-down",
                    lambda: self.tab.move(i, 1),
                    i == count - 1,
                )
                self._action(
                    "content_copy",
                    "Duplicate",
                    f"dataset-{i}-duplicate",
                    lambda: self.tab.duplicate(i),
                )
                self._action("delete", "Remove", f"dataset-{i}-remove", lambda: self.tab.remove(i))
            self.note = ui.label().classes("text-xs text-warning").mark(f"dataset-{i}-note")
            self.fields = FieldsUI(
                self.edit,
                self.pick_folder,
                show_advanced=self.tab.show_advanced,
                specs=DATASET_FIELDS,
            )
            self.fields.render_sections(dataset_sections(self.entry, self.states, self.errors()))
            for name, ctl in self.fields.controls.items():  # unique markers per entry for tests
                ctl.control.mark(f"field-{name} dataset-{i}-{name}")
            self.scan_summary = ui.label().classes("text-sm").mark(f"dataset-{i}-scan-summary")
            self.scan_area = ui.column().classes("w-full gap-1")
        self.refresh_note()
        last = self.tab.service.last_scan(str(self.entry.get("path") or ""))
        if last is not None:
            self.show_scan(last)

    @staticmethod
    def _action(icon: str, tip: str, marker: str, handler: Any, disabled: bool = False) -> None:
        button = (
            ui.button(icon=icon, on_click=handler)
            .props("flat round dense")
            .tooltip(tip)
            .mark(marker)
        )
        if disabled:
            button.disable()

    # ---- edits ---------------------------------------------------------------------------
    def errors(self) -> dict[str, str]:
        prefix = f"datasets[{self.index}]."
        found = {
            issue.path[len(prefix) :]: issue.message
            for issue in self.tab.form.validation().errors
            if issue.path.startswith(prefix)
        }
        found.update(dict.fromkeys(self.blanks, BLANK_MESSAGE))
        return found

    def edit(self, name: str, value: Any) -> None:
        spec = DATASET_FIELDS[name]
        value = from_widget(spec, value)
        datasets = copy.deepcopy(self.tab.form.datasets)
        if value is BLANK:
            self.blanks.add(name)  # an emptied number box: keep the last value, say why
            self.fields.set_error(name, BLANK_MESSAGE)
            return
        self.blanks.discard(name)
        datasets[self.index][name] = value
        self.tab.form.set_datasets(datasets)
        self.states, changed = self.evaluator.update(self.entry, name, self.states)
        self.fields.apply_states(changed)
        errors = self.errors()
        errors.setdefault(name, check_value(spec, self.entry[name]) or "")
        self.fields.sync_errors({k: v for k, v in errors.items() if v})
        self.title_label.text = self.title()
        if name == "path":
            self.refresh_note()
        self.tab.refresh_estimate()

    def pick_folder(self, current: str, on_pick: Any) -> None:
        root = self.tab.service.root.resolved
        start = current if current and self.inside_root(current) else str(root)
        open_folder_picker(start, [root], on_pick)

    def inside_root(self, path: str) -> bool:
        try:
            self.tab.service.root.resolve(path)
        except OutsideRootError:
            return False
        return True

    def refresh_note(self) -> None:
        path = str(self.entry.get("path") or "")
        if path and not self.inside_root(path):
            self.note.text = (
                f"{path} is outside the datasets root ({self.tab.service.root.resolved}): it can be trained on, "
                "but not browsed here. Change the root in Preferences to browse it."
            )
        else:
            self.note.text = ""
        self.note.visible = bool(self.note.text)

    # ---- scan and browse -----------------------------------------------------------------
    def effective(self) -> tuple[dict[str, Any], dict[str, Any]]:
        values = validate_config(self.tab.form.config(), self.tab.form.ctx).values
        return values["datasets"][self.index], values

    async def scan(self) -> ScanResult | None:
        entry, config = self.effective()
        self.scan_summary.text = "Scanning…"
        result = await run.io_bound(self.tab.service.scan, entry, config)
        if result is None:  # the server is shutting down
            return None
        self.show_scan(result)
        self.tab.refresh_estimate()
        return result

    def show_scan(self, result: ScanResult) -> None:
        warnings = scan_warnings(self.index, result)
        self.scan_summary.text = f"Last scan: {result.summary()}"
        self.scan_summary.classes(
            replace="text-sm " + ("text-warning" if warnings else "text-positive")
        )
        self.scan_area.clear()
        with self.scan_area:
            for issue in warnings:
                ui.label(issue.message).classes("text-xs text-warning")
            with ui.expansion("Scan details", icon="insights").classes("w-full").props("dense"):
                render_scan_result(result)

    def browse(self) -> DatasetGallery | None:
        path = str(self.entry.get("path") or "")
        try:
            folder = self.tab.service.root.resolve(path)
        except OutsideRootError as exc:
            ui.notify(f"Cannot browse: {exc}", type="warning", multi_line=True)
            return None
        if not folder.is_dir():
            ui.notify(f"Cannot browse: {folder} is not a folder", type="warning")
            return None
        entry, _ = self.effective()
        gallery = DatasetGallery(self.tab.service, folder, entry.get("caption_extension", ".txt"))
        gallery.open()
        self.tab.last_gallery = gallery
        return gallery


class DatasetsTab:
    def __init__(self, form: FormState, services: Services) -> None:
        self.form = form
        self.services = services
        self.service: DatasetService = dataset_service(services)
        self.show_advanced = bool(services.prefs.prefs.show_advanced)
        self.cards: list[EntryCard] = []
        self.last_gallery: DatasetGallery | None = None

    def build(self) -> None:
        with ui.column().classes("w-full gap-2").mark("datasets-tab"):
            with ui.row().classes("items-center w-full gap-2"):
                ui.button("Add dataset", icon="add", on_click=self.add).props("no-caps").mark(
                    "add-dataset"
                )
                ui.button(
                    "Create demo dataset", icon="auto_awesome", on_click=self.create_demo
                ).props("no-caps outline").mark("create-demo")
                ui.button("Scan all", icon="search", on_click=self.scan_all).props(
                    "no-caps outline"
                ).mark("scan-all")
                ui.space()
                ui.label(f"Datasets root: {self.service.root.resolved}").classes(
                    "text-xs text-grey-7 font-mono"
                )
            self.estimate = ui.label().classes("text-sm").mark("datasets-estimate")
            self.empty = (
                ui.label(
                    "No dataset yet: add one (a folder of images with .txt captions) or create the demo dataset."
                )
                .classes("text-grey-7")
                .mark("datasets-empty")
            )
            self.list = ui.column().classes("w-full gap-2")
        self.render_entries()

    def render_entries(self) -> None:
        self.list.clear()
        self.cards = [EntryCard(self, i) for i in range(len(self.form.datasets))]
        with self.list:
            for card in self.cards:
                card.build()
        self.empty.visible = not self.cards
        self.refresh_estimate()

    def refresh_estimate(self) -> None:
        """Steps per epoch for the enabled entries, from their latest scans."""
        values = validate_config(self.form.config(), self.form.ctx).values
        scans: list[ScanResult] = []
        for entry in values.get("datasets") or []:
            if entry.get("enabled") and entry.get("kind") != "eval":  # eval never trains
                scan = self.service.last_scan(str(entry.get("path") or ""))
                if scan is None:
                    self.estimate.text = "Scan the datasets to estimate the steps per epoch."
                    return
                scans.append(scan)
        if not scans:
            self.estimate.text = ""
            return
        batch, accum = int(values["train_batch_size"]), int(values["gradient_accumulation_steps"])
        steps = combined_steps_per_epoch(scans, batch, accum, int(values["num_processes"]))
        self.estimate.text = (
            f"~{steps} steps per epoch over {len(scans)} enabled dataset(s) "
            f"(batch {batch}, gradient accumulation {accum}, repeats included)"
        )

    # ---- list operations -----------------------------------------------------------------
    def _commit(self, datasets: list[dict[str, Any]]) -> None:
        self.form.set_datasets(datasets)
        self.render_entries()

    def add(self, entry: dict[str, Any] | None = None) -> None:
        self._commit([*copy.deepcopy(self.form.datasets), dict(entry or {})])

    def duplicate(self, index: int) -> None:
        datasets = copy.deepcopy(self.form.datasets)
        twin = copy.deepcopy(datasets[index])
        if twin.get("name"):
            twin["name"] = f"{twin['name']} (copy)"
        datasets.insert(index + 1, twin)
        self._commit(datasets)

    def remove(self, index: int) -> None:
        datasets = copy.deepcopy(self.form.datasets)
        removed = datasets.pop(index)
        self._commit(datasets)
        ui.notify(f"Removed {removed.get('name') or removed.get('path') or 'the dataset'}")

    def move(self, index: int, delta: int) -> None:
        target = index + delta
        if not 0 <= target < len(self.form.datasets):
            return
        datasets = copy.deepcopy(self.form.datasets)
        datasets[index], datasets[target] = datasets[target], datasets[index]
        self._commit(datasets)

    def set_advanced(self, show: bool) -> None:
        self.show_advanced = show
        for card in self.cards:
            card.fields.set_show_advanced(show)

    async def create_demo(self) -> Path | None:
        # Imported on use: it draws with PIL.ImageDraw/ImageFont, which a page never needs.
        from tunerdeck_common.demo_dataset import ensure_demo_dataset

        root = self.service.root.resolved
        path = await run.io_bound(ensure_demo_dataset, root / DEMO_FOLDER)
        if path is None:  # the server is shutting down
            return None
        if not any(str(e.get("path") or "") == str(path) for e in self.form.datasets):
            self.add({"name": DEMO_FOLDER, "path": str(path)})
            ui.notify(f"Demo dataset ready in {path} and added to the list", type="positive")
        else:
            ui.notify(f"Demo dataset ready in {path}", type="positive")
        return path

    async def scan_all(self) -> None:
        for card in list(self.cards):
            await card.scan()


def render_datasets_tab(form: FormState, services: Services) -> DatasetsTab:
    """The "datasets" tab's context hook (called by the trainer page)."""
    tab = DatasetsTab(form, services)
    tab.build()
    return tab
