"""What the monitor shows of one run, folded from its event stream. Pure: no NiceGUI.

`MonitorModel` owns the chart series (`ChartData`: loss, smoothed loss, learning rate; and
`EvalSeries`: the eval loss) and the bookkeeping of the stream:

- events up to `loaded_seq` were already in the run detail the page was built from: skipped;
- a progress event older than the newest one drawn is a gap filled late: the points are
  reloaded from the service (`Changes.reload_points`) instead of being drawn out of order;
- a resumed attempt repeats no step: its lower steps replace what a crashed attempt drew.

`fold(items)` takes one batch of bus items (events and trainer output lines) and returns a
`Changes`: what the page must redraw or ask the service for, and the log lines, toasts and
alerts to show. The page only applies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.services.chart_data import ChartData
from app.services.event_bus import LogLine
from app.services.stall import STALL_PREFIX
from tunerdeck_common.events import Event

# The toast colours NiceGUI's `ui.notify` accepts.
ToastType = Literal["positive", "negative", "warning", "info", "ongoing"]
TOAST_TYPES: dict[str, ToastType] = {
    "completed": "positive",
    "stopped": "info",
    "failed": "negative",
    "running": "info",
    "stopping": "info",
}


class EvalSeries:
    """The eval losses of one run by step (a handful of points: one every eval_steps)."""

    def __init__(self, points: Iterable[tuple[int, float]] = ()) -> None:
        self.points: dict[int, float] = {}
        for step, loss in points:
            self.add(step, loss)

    def add(self, step: int, loss: float) -> None:
        if self.points and step <= max(self.points):
            # A resumed attempt measures again from its checkpoint on.
            self.points = {s: v for s, v in self.points.items() if s < step}
        self.points[step] = loss

    @property
    def last(self) -> float | None:
        return self.points[max(self.points)] if self.points else None

    @property
    def best(self) -> float | None:
        return min(self.points.values()) if self.points else None

    def series(self, name: str = "eval loss") -> dict[str, Any]:
        return {
            "name": name,
            "type": "line",
            "showSymbol": True,
            "symbolSize": 6,
            "data": [[s, self.points[s]] for s in sorted(self.points)],
        }


@dataclass
class Changes:
    """What one batch of items changed, for the page to apply."""

    charts: bool = False  # a series got a point (redraw, throttled)
    gallery: bool = False  # new validation images: the service has the groups
    checkpoints: bool = False  # a checkpoint or a state change: re-read the list
    reload_points: bool = False  # a progress point arrived late: re-read the series
    ask_service: bool = False  # re-read the run's record (state, message)
    latest: dict[str, Any] | None = None  # the newest progress data, for the header
    logs: list[dict[str, Any]] = field(default_factory=list)  # {"ts", "level", "message"}
    toasts: list[tuple[str, ToastType]] = field(default_factory=list)  # (message, notify type)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # AlertData-like dicts

    @property
    def refetch(self) -> bool:
        """The run's detail must be read again (validations, checkpoints or points)."""
        return self.gallery or self.checkpoints or self.reload_points


class MonitorModel:
    def __init__(self, smoothing: float = 0.6) -> None:
        self.chart = ChartData(smoothing)
        self.evals = EvalSeries()
        self.progress_seq = 0  # seq of the newest progress event drawn
        self.loaded_seq = 0  # events up to this seq were in the detail the page was built from
        self.stage: dict[str, Any] | None = None  # the latest stage event while the run starts

    def load(self, last_seq: int, evals: Sequence[Any]) -> None:
        """Start from a run detail: its last seq and its eval points (EvalPoint-like)."""
        self.loaded_seq = last_seq
        self.evals = EvalSeries((int(p.step), float(p.loss)) for p in evals)

    def set_smoothing(self, weight: float) -> None:
        self.chart.set_weight(weight)

    def loss_series(self) -> list[dict[str, Any]]:
        """Training loss (raw, smoothed) and, beside it on the same axes, the eval loss."""
        series = self.chart.loss_series()
        if self.evals.points:
            series.append(self.evals.series())
        return series

    def lr_series(self) -> list[dict[str, Any]]:
        return self.chart.lr_series()

    def fold(self, items: Iterable[Event | LogLine]) -> Changes:
        changes = Changes()
        for item in items:
            if isinstance(item, LogLine):
                if item.text.startswith(STALL_PREFIX):
                    changes.alerts.append(
                        {"kind": "stalled", "message": item.text[len(STALL_PREFIX) :]}
                    )
                changes.logs.append({"ts": item.ts, "level": "output", "message": item.text})
                continue
            self._fold_event(item, changes)
        return changes

    def _fold_event(self, event: Event, changes: Changes) -> None:
        if event.seq <= self.loaded_seq:
            return  # already in the detail the page was built from
        data = event.data
        kind = event.type
        if kind == "progress":
            if event.seq < self.progress_seq:  # a gap filled late: the service slots it in
                changes.reload_points = True
                return
            self.progress_seq = event.seq
            self.chart.add(int(data["step"]), data.get("loss"), data.get("lr"))
            changes.latest = data
            changes.charts = True
        elif kind == "eval":
            self.evals.add(int(data["step"]), float(data["loss"]))
            changes.charts = True
        elif kind == "stage":
            self.stage = dict(data)
        elif kind == "alert":
            changes.alerts.append(dict(data))
        elif kind == "validation":
            changes.gallery = True
        elif kind == "checkpoint":
            changes.checkpoints = changes.ask_service = True
        elif kind == "lifecycle":
            changes.checkpoints = changes.ask_service = True
            state = data["state"]
            changes.toasts.append(
                (
                    f"Run {event.run_id}: {state}. {data.get('message', '')}",
                    TOAST_TYPES.get(state, "info"),
                )
            )
        elif kind == "error":
            changes.ask_service = True
            changes.toasts.append((f"Run {event.run_id} error: {data['message']}", "negative"))
        if kind in ("log", "lifecycle", "error"):
            level = "error" if kind == "error" else data.get("level", "info")
            message = data.get("message", "")
            if kind == "lifecycle":
                message = f"{data['state']}: {message}"
            changes.logs.append({"ts": event.ts, "level": level, "message": message})
