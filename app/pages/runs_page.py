"""The runs history (/runs): every run with config name, state, steps, final loss, eval loss
(the newest and the best) and duration; open one, compare the loss and eval-loss curves of
several, delete (after a confirmation), and
the queue (move up/down, cancel)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nicegui import ui

from app.pages.layout import NAV_LINKS, page_frame, transient_dialog
from app.pages.live_updates import LiveUpdates
from app.pages.monitor_view import line_chart
from app.pages.run_bar import format_duration, redraw_on_run_changes
from app.services.chart_data import ChartData, read_run
from app.services.container import Services, get_services
from app.services.event_bus import Item
from app.services.monitor_model import EvalSeries
from app.services.run_service import RunError, RunInfo, RunService
from tunerdeck_common.repro import changes, read_record

_COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "label": "Run", "field": "id", "align": "left", "sortable": True},
    {"name": "config_name", "label": "Config", "field": "config_name", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left", "sortable": True},
    {"name": "steps", "label": "Steps", "field": "steps", "align": "right"},
    {"name": "loss", "label": "Final loss", "field": "loss", "align": "right"},
    {"name": "eval_loss", "label": "Eval loss (best)", "field": "eval_loss", "align": "right"},
    {"name": "duration", "label": "Duration", "field": "duration", "align": "right"},
    {"name": "created", "label": "Created", "field": "created", "align": "left", "sortable": True},
]


def format_eval(last: float | None, best: float | None) -> str:
    """The newest eval loss, and the best in brackets when an earlier one was lower."""
    if last is None:
        return "–"
    if best is None or best >= last:
        return f"{last:.4f}"
    return f"{last:.4f} ({best:.4f})"


def _row(run: RunInfo) -> dict[str, object]:
    return {
        "id": run.id,
        "config_name": run.config_name or "(unsaved)",
        "state": run.state
        + (f" #{run.queue_position + 1}" if run.queue_position is not None else ""),
        "steps": f"{run.step}/{run.max_steps or '?'}",
        "loss": f"{run.loss:.4f}" if run.loss is not None else "–",
        "eval_loss": format_eval(run.eval_loss, run.best_eval_loss),
        "duration": format_duration(run.duration_s),
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at)),
    }


class RunsPage:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.runs: list[RunInfo] = []

    @property
    def _service(self) -> RunService:
        service = self.services.run_service
        assert service is not None  # build() offers no action without one
        return service

    async def build(self) -> None:
        page_frame(self.services, "/runs")
        with ui.column().classes("td-main w-full gap-3 p-2"):
            service, bus = self.services.run_service, self.services.event_bus
            if service is None or bus is None:
                ui.label("This server has no run service.")
                return
            ui.label("Queue").classes("text-h6")
            self.queue_box = ui.column().classes("w-full gap-1").mark("queue")
            ui.label("Runs").classes("text-h6")
            self.table = ui.table(
                columns=_COLUMNS, rows=[], row_key="id", selection="multiple"
            ).classes("w-full")
            self.table.mark("runs-table")
            with ui.row().classes("gap-2"):
                ui.button("Open", icon="open_in_new", on_click=self._open).props("no-caps").mark(
                    "open-run"
                )
                ui.button("Compare loss", icon="stacked_line_chart", on_click=self._compare).props(
                    "no-caps"
                ).mark("compare-runs")
                ui.button("Run again", icon="replay", on_click=self._run_again).props(
                    "no-caps"
                ).mark("run-again")
                ui.button("Delete", icon="delete", on_click=self._confirm_delete).props(
                    "no-caps color=negative"
                ).mark("delete-runs")
            # The chart is made on the first comparison: an echart, even hidden, makes the
            # browser load the charting library before the page is usable.
            self.compare_box = ui.column().classes("w-full")
            self.compare_chart: ui.echart | None = None
        await self.refresh()
        self.live = LiveUpdates(  # the whole table is sent again: a few times a second at most
            bus, lambda _items: self.refresh(), accept=_is_event, interval=0.25
        )
        redraw_on_run_changes(service, self.live)

    async def refresh(self) -> None:
        self.runs = await self._service.list_runs()
        self.table.rows = [_row(r) for r in self.runs]
        ids = {r.id for r in self.runs}  # a run deleted elsewhere leaves the selection too
        self.table.selected = [row for row in self.table.selected if row["id"] in ids]
        self.table.update()
        queued = sorted(
            (r for r in self.runs if r.state == "queued"), key=lambda r: r.queue_position or 0
        )
        self.queue_box.clear()
        with self.queue_box:
            if not queued:
                ui.label("Nothing is waiting.").classes("text-sm text-grey-7")
            for run in queued:
                with ui.row().classes("items-center gap-2").mark(f"queued-{run.id}"):
                    ui.label(
                        f"#{(run.queue_position or 0) + 1} {run.id} · {run.config_name or '(unsaved)'}"
                    )
                    ui.button(icon="arrow_upward", on_click=lambda r=run: self._move(r, -1)).props(
                        "flat dense"
                    ).mark(f"up-{run.id}").tooltip("Earlier in the queue")
                    ui.button(icon="arrow_downward", on_click=lambda r=run: self._move(r, 1)).props(
                        "flat dense"
                    ).mark(f"down-{run.id}").tooltip("Later in the queue")
                    ui.button("Cancel", on_click=lambda r=run: self._cancel(r)).props(
                        "flat dense no-caps"
                    ).mark(f"cancel-{run.id}")

    def _selected(self) -> list[str]:
        return [row["id"] for row in self.table.selected]

    def _open(self) -> None:
        ids = self._selected()
        if len(ids) != 1:
            ui.notify("Select one run to open.", type="warning")
            return
        ui.navigate.to(f"/monitor/{ids[0]}")

    async def _run_again(self) -> None:
        """Start a new run with a finished run's exact config, after saying what changed
        since (datasets, base model) according to its reproducibility record."""
        ids = self._selected()
        if len(ids) != 1:
            ui.notify("Select one run to run again.", type="warning")
            return
        run = next((r for r in self.runs if r.id == ids[0]), None)
        record = read_record(Path(run.run_dir)) if run is not None else None
        if record is None:
            ui.notify("This run has no reproducibility record to start from.", type="warning")
            return
        changed = changes(record)
        config = {k: v for k, v in record["config"].items() if k != "output_dir"}
        with transient_dialog() as dialog, ui.card().classes("w-[40rem]").mark("run-again-dialog"):
            ui.label(f"Run {ids[0]} again").classes("text-h6")
            packages = ", ".join(f"{k} {v}" for k, v in record.get("packages", {}).items() if v)
            ui.label(f"Recorded with {packages}.").classes("text-sm text-grey-8")
            if changed:
                ui.label("Changed since that run:").classes("text-warning font-medium")
                for line in changed:
                    ui.label(line).classes("text-sm text-warning").mark("run-again-change")
            else:
                ui.label("The datasets and the base model are unchanged.").mark("run-again-same")

            async def start() -> None:
                dialog.close()
                await self._start_again(config, ids[0])

            with ui.row().classes("justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Start", on_click=start).mark("run-again-start")
        dialog.open()

    async def _start_again(self, config: dict, source: str) -> None:
        try:
            run = await self._service.start_run(config=config, config_name=f"again: {source}")
        except RunError as exc:
            ui.notify(" ".join([exc.message, *exc.errors]), type="negative", multi_line=True)
            return
        ui.notify(f"Run {run.id} started with the config of run {source}", type="positive")
        await self.refresh()

    async def _compare(self) -> None:
        ids = self._selected()
        if not ids:
            ui.notify("Select the runs whose loss curves you want to compare.", type="warning")
            return
        series = []
        for run_id in ids:
            chart = ChartData(0.6)
            try:  # folded into the chart, downsampled: never one object per step
                detail = await read_run(self._service, run_id, chart)
            except RunError:
                continue
            smoothed = chart.loss_series(run_id)[1]
            series.append({**smoothed, "name": run_id})
            if detail.evals:  # dashed, on the same axes: held-out loss against training loss
                evals = EvalSeries((p.step, p.loss) for p in detail.evals).series(f"{run_id} eval")
                series.append({**evals, "lineStyle": {"type": "dashed"}})
        if self.compare_chart is None:
            with self.compare_box:
                self.compare_chart = ui.echart(
                    line_chart("loss (smoothed), eval loss dashed", [])
                ).classes("w-full h-72")
                self.compare_chart.mark("compare-chart")
        self.compare_chart.options["series"] = series
        self.compare_chart.update()

    async def _confirm_delete(self) -> None:
        ids = self._selected()
        if not ids:
            ui.notify("Select the runs to delete.", type="warning")
            return
        with ui.dialog() as dialog, ui.card().mark("confirm-delete"):
            ui.label(f"Delete {len(ids)} run(s) and their files (checkpoints, images, weights)?")
            ui.label(", ".join(ids)).classes("text-sm text-grey-8")
            with ui.row():
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat").mark(
                    "cancel-delete"
                )
                ui.button("Delete", on_click=lambda: dialog.submit(True)).props(
                    "color=negative"
                ).mark("confirm-delete-button")
        confirmed = await dialog  # False/None: Cancel, Escape or a click outside
        dialog.delete()  # one dialog per question, not one more left behind each time
        if confirmed:
            await self._delete(ids)

    async def _delete(self, ids: list[str]) -> None:
        for run_id in ids:
            try:
                await self._service.delete_run(run_id)
            except RunError as exc:
                ui.notify(exc.message, type="warning")
        self.table.selected = []
        await self.refresh()

    async def _move(self, run: RunInfo, delta: int) -> None:
        await self._service.move_in_queue(run.id, max(0, (run.queue_position or 0) + delta))
        await self.refresh()

    async def _cancel(self, run: RunInfo) -> None:
        try:
            await self._service.cancel_queued(run.id)
        except RunError as exc:
            ui.notify(exc.message, type="warning")
        await self.refresh()


def _is_event(item: Item) -> bool:
    return not hasattr(item, "text")


def register() -> None:
    if ("/runs", "Runs", "history") not in NAV_LINKS:
        NAV_LINKS.append(("/runs", "Runs", "history"))

    @ui.page("/runs", title="tunerdeck · runs")
    async def runs() -> None:
        await RunsPage(get_services()).build()
