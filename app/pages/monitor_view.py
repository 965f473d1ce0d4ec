"""Chart options and small formatting helpers for the monitor and runs pages (no UI state)."""

from __future__ import annotations

from array import array
from typing import Any

NAN = float("nan")
MAX_POINTS = 500  # per series on screen: long runs are thinned, the record keeps every point


class _Ema:
    """One running, debiased exponential moving average."""

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.last = 0.0
        self.count = 0

    def add(self, value: float) -> float:
        self.last = self.last * self.weight + (1 - self.weight) * value
        self.count += 1
        debias = 1 - self.weight**self.count if self.weight > 0 else 1.0
        return self.last / debias


class ChartData:
    """The loss (raw and smoothed) and learning-rate series of one run, grown point by point.

    Live runs add hundreds of points a second and redraw a few times a second, in every open
    tab: points go into flat float arrays (16 bytes a step, O(1) to add) and a redraw slices
    every k-th one, instead of rebuilding lists of 100k points per tab."""

    def __init__(self, weight: float = 0.6) -> None:
        self.weight = weight
        self.reset([])

    def reset(self, points: list[tuple[int, float | None, float | None]]) -> None:
        self.steps = array("d")
        self.losses = array("d")  # NaN: no loss at that step
        self.smoothed = array("d")
        self.lrs = array("d")
        self._ema = _Ema(self.weight)
        self.extend(points)

    def set_weight(self, weight: float) -> None:
        self.weight = weight
        self._ema = _Ema(weight)
        self.smoothed = array("d", (v if v != v else self._ema.add(v) for v in self.losses))

    def add(self, step: int, loss: float | None, lr: float | None) -> None:
        if self.steps and step <= self.steps[-1]:
            # A resumed attempt repeats no step: drop what a crashed attempt drew past it.
            self.reset([p for p in self.points() if p[0] < step])
        self.steps.append(step)
        self.losses.append(NAN if loss is None else loss)
        self.smoothed.append(NAN if loss is None else self._ema.add(loss))
        self.lrs.append(NAN if lr is None else lr)

    def extend(self, points: list[tuple[int, float | None, float | None]]) -> None:
        for step, loss, lr in points:
            self.add(step, loss, lr)

    def points(self) -> list[tuple[int, float | None, float | None]]:
        return [
            (int(s), None if loss != loss else loss, None if lr != lr else lr)
            for s, loss, lr in zip(self.steps, self.losses, self.lrs, strict=True)
        ]

    def _thin(self, values: array) -> list[list[float]]:
        """Every k-th step (and the last) with a value: at most ~MAX_POINTS pairs (NaN: none)."""
        stride = max(1, -(-len(self.steps) // MAX_POINTS))
        pairs = [
            [s, v] for s, v in zip(self.steps[::stride], values[::stride], strict=True) if v == v
        ]
        last = len(self.steps) - 1
        if last % stride and values[last] == values[last]:
            pairs.append([self.steps[last], values[last]])
        return pairs

    def loss_series(self, name: str = "loss") -> list[dict[str, Any]]:
        """The raw loss (faint) and its smoothed curve."""
        return [
            {
                "name": name,
                "type": "line",
                "showSymbol": False,
                "data": self._thin(self.losses),
                "lineStyle": {"opacity": 0.35},
            },
            {
                "name": f"{name} (smoothed)",
                "type": "line",
                "showSymbol": False,
                "data": self._thin(self.smoothed),
            },
        ]

    def lr_series(self) -> list[dict[str, Any]]:
        return [{"name": "lr", "type": "line", "showSymbol": False, "data": self._thin(self.lrs)}]


def loss_series(
    pairs: list[tuple[int, float | None]], weight: float, name: str = "loss"
) -> list[dict[str, Any]]:
    """The raw loss (faint) and its smoothed curve from (step, loss) pairs."""
    data = ChartData(weight)
    data.extend([(step, loss, None) for step, loss in pairs])
    return data.loss_series(name)


def line_chart(title: str, series: list[dict[str, Any]], *, log_y: bool = False) -> dict[str, Any]:
    return {
        "animation": False,
        "title": {"text": title, "textStyle": {"fontSize": 13}},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "right": 0, "type": "scroll"},
        "grid": {"left": 60, "right": 20, "top": 40, "bottom": 30},
        "xAxis": {"type": "value", "name": "step", "min": "dataMin"},
        "yAxis": {"type": "log" if log_y else "value", "scale": True},
        "series": series,
    }


def format_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
