"""The monitor view (/monitor, /monitor/{run_id}): loss (with the eval loss beside it) and
learning-rate charts with smoothing, validation images by step (click to enlarge), the log
tail with a level filter, checkpoints, toasts for lifecycle changes, a banner while a run is
active, and hardware telemetry.

It reads a `RunDetail` once, then folds in the run's events as they arrive (throttled) through
`app.services.monitor_model.MonitorModel`, and applies what it says changed."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from nicegui import run, ui

from app.pages.layout import NAV_LINKS, page_frame
from app.pages.live_updates import LiveUpdates
from app.pages.monitor_view import format_bytes, line_chart
from app.pages.run_bar import (
    fold_progress,
    format_duration,
    pick_current,
    redraw_on_run_changes,
    shows_stage,
    stage_view,
)
from app.pages.samples_grid import build_grid, draw_grid
from app.services import hardware
from app.services.chart_data import read_run
from app.services.container import Services, get_services
from app.services.event_bus import Item
from app.services.monitor_model import MonitorModel
from app.services.run_service import RunDetail, RunError, RunInfo
from app.services.stall import STALL_PREFIX
from tunerdeck_common.runstate import RunState

CHART_INTERVAL_S = 0.5
NAN_PREFIX = "NonFiniteLoss: "  # how a failed run's message starts after a NaN stop
LEVELS = ("all", "error", "warning", "info", "output")
_LEVEL_RANK = {"debug": 0, "output": 1, "info": 1, "warning": 2, "error": 3, "critical": 3}


class MonitorPage:
    def __init__(self, services: Services, run_id: str | None) -> None:
        self.services = services
        self.run_id = run_id
        self.detail: RunDetail | None = None
        self.smoothing = 0.6
        self.level = "all"
        # The event stream folded into what this page shows (charts, seqs, stage).
        self.model = MonitorModel(self.smoothing)

    async def build(self) -> None:
        page_frame(self.services, "/monitor")
        service, bus = self.services.run_service, self.services.event_bus
        with ui.column().classes("td-main w-full gap-3 p-2"):
            if service is None or bus is None:
                ui.label("This server has no run service.").mark("no-run-service")
                return
            if self.run_id is None:
                current = pick_current(await service.list_runs())
                self.run_id = current.id if current else None
            self.banner = ui.card().classes("w-full bg-primary text-white").mark("active-banner")
            with self.banner, ui.row().classes("items-center no-wrap"):
                # A still icon: an animated spinner repaints 60 times a second in every open tab.
                ui.icon("model_training", size="sm")
                self.banner_text = ui.label("")
            self.banner.visible = False
            if self.run_id is None:
                ui.label("No run yet: start one from the Trainer page.").classes(
                    "text-grey-7"
                ).mark("no-runs")
                self._hardware_card()
                # The first event of a new run opens its monitor.
                self.live = LiveUpdates(bus, self._open_first_run)
                return
            # Listen before reading the run, so nothing published meanwhile is missed; what the
            # detail already holds is skipped by seq.
            self.live = LiveUpdates(bus, self._on_items, accept=self._accept, held=True)
            try:  # the history is folded into the chart, never one object per step
                self.detail = await read_run(service, self.run_id, self.model.chart)
            except RunError as exc:
                self.live.close()
                ui.label(exc.message).classes("text-negative").mark("monitor-error")
                return
            self.model.load(self.detail.run.last_seq, self.detail.evals)
            self._header()
            self.alerts = ui.column().classes("w-full gap-2").mark("alerts")
            self._alerts_from_history(self.detail)
            self._charts()
            with ui.expansion("Validation images", icon="image", value=True).classes("w-full"):
                self.gallery = ui.column().classes("w-full gap-2").mark("gallery")
            self._draw_gallery()
            self._log_and_checkpoints()
            self._hardware_card()
        self.live.release()
        # Stop, delete or queue changes from another tab reach this one without a trainer event.
        redraw_on_run_changes(service, self.live)

    # ---- sections -----------------------------------------------------------------------------
    def _alerts_from_history(self, detail: RunDetail) -> None:
        """The alerts a run raised before this page opened: a NaN stop, a stall note."""
        run = detail.run
        if run.state == "failed" and run.message.startswith(NAN_PREFIX):
            self._show_alert({"kind": "nan", "message": run.message[len(NAN_PREFIX) :]})
        stalls = [e for e in detail.logs if str(e.get("message", "")).startswith(STALL_PREFIX)]
        if stalls:  # the latest note is enough: the log lists every one
            self._show_alert(
                {"kind": "stalled", "message": stalls[-1]["message"][len(STALL_PREFIX) :]}
            )

    def _charts(self) -> None:
        with ui.row().classes("w-full items-center gap-4"):
            ui.label("Smoothing").classes("text-sm")
            ui.slider(
                min=0, max=0.99, step=0.01, value=self.smoothing, on_change=self._set_smoothing
            ).classes("w-48").mark("smoothing")
            ui.space()
            # The charts show each stretch's low and high; every step is in this file.
            ui.link(
                "Full record (every step)", self._file_url("events.jsonl"), new_tab=True
            ).classes("text-sm").mark("full-record")
        loss, lr = self._chart_series()
        with ui.row().classes("w-full no-wrap gap-2"):
            self.loss_chart = (
                ui.echart(line_chart("loss", loss)).classes("w-1/2 h-64").mark("loss-chart")
            )
            self.lr_chart = (
                ui.echart(line_chart("learning rate", lr)).classes("w-1/2 h-64").mark("lr-chart")
            )
        self.charts_dirty = False
        ui.timer(CHART_INTERVAL_S, self._draw_charts_if_dirty)

    def _log_and_checkpoints(self) -> None:
        with ui.row().classes("w-full no-wrap gap-2 items-start"):
            with ui.card().classes("w-2/3"):
                with ui.row().classes("items-center w-full"):
                    ui.label("Log").classes("font-medium")
                    ui.space()
                    ui.select(
                        list(LEVELS), value=self.level, label="level", on_change=self._set_level
                    ).props("dense").classes("w-32").mark("log-level")
                self.log_view = ui.log(max_lines=500).classes("w-full h-64 text-xs").mark("log")
                self._draw_log()
            with ui.card().classes("w-1/3"):
                ui.label("Checkpoints").classes("font-medium")
                self.checkpoints = ui.column().classes("gap-0").mark("checkpoints")
                self._draw_checkpoints()

    def _header(self) -> None:
        with ui.card().classes("w-full"):
            with ui.row().classes("items-center gap-4 w-full"):
                self.title = ui.label("").classes("text-h6").mark("monitor-title")
                self.state_badge = ui.badge("").mark("monitor-state")
                ui.space()
                ui.link("All runs", "/runs").classes("text-sm")
            # instant-feedback: no CSS transition to repaint on every one of many updates.
            self.progress = (
                ui.linear_progress(value=0, show_value=False)
                .props("instant-feedback")
                .mark("monitor-progress")
            )
            self.summary = ui.label("").classes("text-sm").mark("monitor-summary")
            self.message = ui.label("").classes("text-sm text-grey-8").mark("monitor-message")
        self._draw_header()

    def _draw_header(self) -> None:
        assert self.detail is not None
        run = self.detail.run
        self.title.text = f"Run {run.id}" + (f" · {run.config_name}" if run.config_name else "")
        self.state_badge.text = run.state
        self.state_badge.props(f"color={_state_color(run.state)}")
        self.progress.value = round(run.step / run.max_steps, 4) if run.max_steps else 0
        parts = [f"step {run.step}/{run.max_steps or '?'}"]
        stage = self.model.stage
        if shows_stage(run.state, run.step, stage):  # what the trainer is doing, counted
            label, done = stage_view(stage)
            parts = [label]
            self.progress.value = done or 0
            busy = done is None
        else:
            busy = False
        if busy != ("indeterminate" in self.progress.props):
            if busy:
                self.progress.props("indeterminate")
            else:
                self.progress.props(remove="indeterminate")
        if run.loss is not None:
            parts.append(f"loss {run.loss:.4f}")
        if run.it_per_s:
            parts.append(f"{run.it_per_s:.2f} it/s")
        if run.eta_s is not None and run.state.is_active:
            parts.append(f"ETA {format_duration(run.eta_s)}")
        if run.duration_s is not None:
            parts.append(f"duration {format_duration(run.duration_s)}")
        self.summary.text = " · ".join(parts)
        self.message.text = run.message
        active = run.state.is_active or run.state == RunState.QUEUED
        self.banner.visible = active
        self.banner_text.text = f"Run {run.id} is {run.state}" + (
            f": step {run.step}/{run.max_steps}" if run.max_steps else ""
        )

    def _show_alert(self, data: dict) -> None:
        """A banner that stays: the trainer stopped at a NaN loss, or the run looks stalled."""
        title = {"nan": "The loss became NaN", "stalled": "The run looks stalled"}.get(
            str(data.get("kind")), "Alert"
        )
        with (
            self.alerts,
            ui.card()
            .classes("w-full bg-red-1 text-negative")
            .mark(f"alert-{data.get('kind', 'other')}"),
        ):
            ui.label(title).classes("text-h6")
            ui.label(str(data.get("message", ""))).classes("text-sm")
            lines = [str(x) for x in data.get("lines") or []]
            if lines:
                ui.label("The trainer's last output:").classes("text-sm font-medium")
                ui.label("\n".join(lines[-10:])).classes("text-xs font-mono whitespace-pre-wrap")

    def _chart_series(self) -> tuple[list[dict], list[dict]]:
        return self.model.loss_series(), self.model.lr_series()

    def _draw_charts(self) -> None:
        # setOption straight to the browser: keeping thousands of points in the element's
        # observable props would cost the server far more than drawing them.
        loss, lr = self._chart_series()
        self.loss_chart.run_chart_method("setOption", {"series": loss})
        self.lr_chart.run_chart_method("setOption", {"series": lr})

    def _draw_charts_if_dirty(self) -> None:
        if self.charts_dirty:
            self.charts_dirty = False
            self._draw_charts()

    def _draw_gallery(self) -> None:
        assert self.detail is not None
        self.gallery.clear()
        with self.gallery:  # prompts (rows) x validation steps (columns)
            draw_grid(build_grid(self.detail.validations), self._file_url)

    def _file_url(self, path: str) -> str:
        assert self.detail is not None
        root = Path(self.detail.run.run_dir)
        try:
            relative = str(Path(path).relative_to(root))
        except ValueError:
            relative = path
        return f"/api/runs/{self.detail.run.id}/file?path={urllib.parse.quote(relative)}"

    def _draw_log(self) -> None:
        assert self.detail is not None
        self.log_view.clear()
        for entry in self.detail.logs:
            self._push_log(entry)

    def _push_log(self, entry: dict) -> None:
        level = entry.get("level", "info")
        if self.level != "all" and _LEVEL_RANK.get(level, 1) < _LEVEL_RANK.get(self.level, 1):
            return
        if self.level == "output" and level != "output":
            return
        prefix = "" if level == "output" else f"[{level}] "
        self.log_view.push(prefix + str(entry.get("message", "")))

    def _draw_checkpoints(self) -> None:
        assert self.detail is not None
        self.checkpoints.clear()
        with self.checkpoints:
            if not self.detail.checkpoints:
                ui.label("No checkpoint yet.").classes("text-sm text-grey-7")
            for ckpt in reversed(self.detail.checkpoints):
                ui.label(f"step {ckpt.step} · {format_bytes(ckpt.size_bytes)}").classes(
                    "text-sm"
                ).mark(f"checkpoint-{ckpt.step}").tooltip(ckpt.path)

    def _hardware_card(self) -> None:
        with ui.card().classes("w-full"):
            ui.label("Hardware").classes("font-medium")
            self.hardware = ui.column().classes("gap-0 text-sm").mark("hardware")
        ui.timer(2.0, self._refresh_hardware, immediate=True)

    async def _refresh_hardware(self) -> None:
        snap = await run.io_bound(hardware.snapshot)
        if snap is None:  # the server is shutting down
            return
        self.hardware.clear()
        with self.hardware:
            if not snap.gpus:
                ui.label(snap.gpu_status).classes("text-grey-8").mark("no-gpu")
            for gpu in snap.gpus:
                parts = [f"GPU {gpu.index}: {gpu.name}"]
                if gpu.utilization_pct is not None:
                    parts.append(f"{gpu.utilization_pct:.0f}% busy")
                if gpu.memory_used_mb is not None and gpu.memory_total_mb:
                    parts.append(
                        f"{gpu.memory_used_mb / 1024:.1f}/{gpu.memory_total_mb / 1024:.1f} GiB"
                    )
                if gpu.temperature_c is not None:
                    parts.append(f"{gpu.temperature_c:.0f} °C")
                if gpu.power_w is not None:
                    parts.append(f"{gpu.power_w:.0f} W")
                ui.label(" · ".join(parts)).mark(f"gpu-{gpu.index}")
            ram = f"{snap.ram_used_mb / 1024:.1f}/{snap.ram_total_mb / 1024:.1f} GiB"
            ui.label(f"CPU {snap.cpu_pct:.0f}% of {snap.cpu_count} cores · RAM {ram}").mark(
                "cpu-ram"
            )

    # ---- live ------------------------------------------------------------------------------
    def _open_first_run(self, items: list[Item]) -> None:
        if items:
            ui.navigate.to(f"/monitor/{items[0].run_id}")

    def _accept(self, item: Item) -> bool:
        return item.run_id == self.run_id

    async def _on_items(self, items: list[Item]) -> None:
        detail = self.detail
        service = self.services.run_service
        if detail is None or service is None:
            return
        changes = self.model.fold(items)
        for alert in changes.alerts:
            self._show_alert(alert)
        for entry in changes.logs:
            detail.logs.append(entry)
            self._push_log(entry)
        for message, kind in changes.toasts:
            ui.notify(message, type=kind, multi_line=kind == "negative")
        progress = changes.charts
        ask_service = changes.ask_service or not items  # a poke: a change made elsewhere
        if changes.refetch:
            fresh = await read_run(
                service, detail.run.id, self.model.chart, points=changes.reload_points
            )
            detail.validations, detail.checkpoints = fresh.validations, fresh.checkpoints
            if changes.gallery:
                self._draw_gallery()
            if changes.checkpoints:
                self._draw_checkpoints()
            progress = True
        if ask_service:
            try:
                detail.run = await service.get_run(detail.run.id)
            except RunError:
                return  # deleted meanwhile
        elif changes.latest is not None:
            fold_progress(detail.run, changes.latest)
        if progress:
            self.charts_dirty = (
                True  # drawn by the chart timer: charts change at most twice a second
            )
        self._draw_header()

    def _set_smoothing(self, event: object) -> None:
        self.smoothing = float(getattr(event, "value", 0) or 0)
        self.model.set_smoothing(self.smoothing)
        self._draw_charts()

    def _set_level(self, event: object) -> None:
        self.level = str(getattr(event, "value", "all") or "all")
        self._draw_log()


def _state_color(state: str) -> str:
    return {
        "running": "primary",
        "starting": "primary",
        "stopping": "warning",
        "queued": "grey",
        "completed": "positive",
        "stopped": "grey-7",
        "failed": "negative",
    }.get(state, "grey")


def register() -> None:
    if ("/monitor", "Monitor", "show_chart") not in NAV_LINKS:
        NAV_LINKS.append(("/monitor", "Monitor", "show_chart"))

    async def render(run_id: str | None) -> None:
        await MonitorPage(get_services(), run_id).build()

    @ui.page("/monitor", title="tunerdeck · monitor")
    async def monitor() -> None:
        await render(None)

    @ui.page("/monitor/{run_id}", title="tunerdeck · run")
    async def monitor_run(run_id: str) -> None:
        await render(run_id)


__all__ = ["MonitorPage", "RunInfo", "register"]
