"""Chart series of a run, folded on the server and cut down to what a chart can show.

A run of 100k steps has 100k loss values; a chart half a screen wide shows a few hundred
pixels. `downsample` keeps, for each of `max_points // 2` equal slices of the series, its
lowest and its highest point (in step order), plus the first and the last point: every spike
and every dip stays on screen, at a bounded cost per redraw. The full record stays in the
run's events.jsonl (the monitor links to it).

`ChartData` holds the loss (raw and smoothed) and learning-rate series of one run, grown point
by point as events arrive, in flat float arrays (16 bytes a point, O(1) to add); steps without
a value are simply not in that series. Nothing here knows NiceGUI.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from itertools import accumulate, compress, islice, repeat
from operator import mul, sub, truediv
from typing import Any

MAX_POINTS = 600  # per series on screen: a low and a high per pixel pair of a half-width chart


def downsample(
    steps: Sequence[float], values: Sequence[float], max_points: int = MAX_POINTS
) -> list[list[float]]:
    """[[step, value], ...] with at most `max_points` (+2) points that keep each slice's minimum
    and maximum, and the first and last point. `steps` ascend; `values` hold no NaN."""
    n = len(values)
    if n <= max_points:
        return [[s, v] for s, v in zip(steps, values, strict=True)]
    buckets = max(1, (max_points - 2) // 2)
    out: list[list[float]] = [[steps[0], values[0]]]
    for b in range(buckets):
        lo, hi = n * b // buckets, n * (b + 1) // buckets
        part = values[lo:hi]  # slices, min, max and index all run in C
        low, high = min(part), max(part)
        i_low, i_high = lo + part.index(low), lo + part.index(high)
        for i in sorted({i_low, i_high}):
            if 0 < i < n - 1:
                out.append([steps[i], values[i]])
    out.append([steps[n - 1], values[n - 1]])
    return out


class _Series:
    """One series' points in step order; a step without a value is not stored."""

    def __init__(self) -> None:
        self.steps = array("q")
        self.values = array("d")

    def add(self, step: int, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)

    def cut(self, step: int) -> None:
        """Drop the points at or past `step` (a resumed attempt repeats no step)."""
        keep = len(self.steps)
        while keep and self.steps[keep - 1] >= step:
            keep -= 1
        del self.steps[keep:]
        del self.values[keep:]

    def points(self, max_points: int) -> list[list[float]]:
        return downsample(self.steps, self.values, max_points)


def _finite(value: Any) -> bool:
    return value is not None and value == value  # NaN != NaN


class ChartData:
    """The loss (raw and smoothed) and learning-rate series of one run, grown point by point."""

    def __init__(self, weight: float = 0.6, max_points: int = MAX_POINTS) -> None:
        self.weight = weight
        self.max_points = max_points
        self.reset([])

    def reset(self, points: Iterable[tuple[int, float | None, float | None]]) -> None:
        self.loss = _Series()
        self.smoothed = _Series()
        self.lr = _Series()
        self.last_step: int | None = None
        self._ema = 0.0
        self._count = 0
        self.extend(points)

    def reset_arrays(
        self, steps: Sequence[int], losses: Sequence[float], lrs: Sequence[float]
    ) -> None:
        """The whole history at once from flat arrays (NaN: no value at that step)."""
        self.reset([])
        for series, values in ((self.loss, losses), (self.lr, lrs)):
            if not math.isnan(sum(values)):  # no NaN (the usual case): plain C copies
                series.steps, series.values = array("q", steps), array("d", values)
                continue
            present = [v == v for v in values]  # NaN != NaN
            series.steps = array("q", compress(steps, present))
            series.values = array("d", compress(values, present))
        if len(steps):
            self.last_step = int(steps[-1])
        self._smooth_all()

    def set_weight(self, weight: float) -> None:
        self.weight = weight
        self._smooth_all()

    def _smooth_all(self) -> None:
        """A debiased exponential moving average of the whole loss series (100k points of
        history at once: the loop runs inside accumulate/map, not in Python bytecode)."""
        weight, values = self.weight, self.loss.values
        count = len(values)
        if weight <= 0 or not count:
            smoothed = array("d", values)
            last = values[-1] if count else 0.0
        else:
            keep = 1 - weight
            ema = accumulate(values, lambda acc, v: acc * weight + keep * v, initial=0.0)
            powers = accumulate(repeat(weight, count), mul)  # weight ** k
            debias = map(sub, repeat(1.0), powers)
            smoothed = array("d", map(truediv, islice(ema, 1, None), debias))
            last = smoothed[-1] * (1 - weight**count)
        self.smoothed = _Series()
        self.smoothed.steps = array("q", self.loss.steps)
        self.smoothed.values = smoothed
        self._ema, self._count = last, count

    def add(self, step: int, loss: float | None, lr: float | None) -> None:
        if self.last_step is not None and step <= self.last_step:
            # A resumed attempt repeats no step: drop what a crashed attempt drew past it.
            for series in (self.loss, self.lr):
                series.cut(step)
            self._smooth_all()
        self.last_step = step
        if _finite(loss):
            assert loss is not None
            self.loss.add(step, loss)
            self._count += 1
            self._ema = self._ema * self.weight + (1 - self.weight) * loss
            debias = 1 - self.weight**self._count if self.weight > 0 else 1.0
            self.smoothed.add(step, self._ema / debias)
        if _finite(lr):
            assert lr is not None
            self.lr.add(step, lr)

    def extend(self, points: Iterable[tuple[int, float | None, float | None]]) -> None:
        for step, loss, lr in points:
            self.add(step, loss, lr)

    def __len__(self) -> int:
        return max(len(self.loss.steps), len(self.lr.steps))

    def loss_series(self, name: str = "loss") -> list[dict[str, Any]]:
        """The raw loss (faint) and its smoothed curve, each at most ~max_points points."""
        return [
            {
                "name": name,
                "type": "line",
                "showSymbol": False,
                "data": self.loss.points(self.max_points),
                "lineStyle": {"opacity": 0.35},
            },
            {
                "name": f"{name} (smoothed)",
                "type": "line",
                "showSymbol": False,
                "data": self.smoothed.points(self.max_points),
            },
        ]

    def lr_series(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "lr",
                "type": "line",
                "showSymbol": False,
                "data": self.lr.points(self.max_points),
            }
        ]


def loss_series(
    pairs: Iterable[tuple[int, float | None]], weight: float, name: str = "loss"
) -> list[dict[str, Any]]:
    """The raw loss (faint) and its smoothed curve from (step, loss) pairs."""
    data = ChartData(weight)
    data.extend((step, loss, None) for step, loss in pairs)
    return data.loss_series(name)


async def read_run(service: Any, run_id: str, chart: ChartData, *, points: bool = True) -> Any:
    """The run's detail (RunDetail) without its per-point progress, and (with `points`) its
    whole progress history folded into `chart`. A service that holds the history as flat
    arrays (the local one) hands those over; another (a remote trainer server) sends points."""
    arrays = getattr(service, "progress_arrays", None)
    if arrays is None:
        detail = await service.get_detail(run_id, include_progress=points)
        if points:
            chart.reset((p.step, p.loss, p.lr) for p in detail.progress)
            detail.progress = []  # folded into the chart: no second copy per page
        return detail
    detail = await service.get_detail(run_id, include_progress=False)
    if points:
        chart.reset_arrays(*arrays(run_id))
    return detail
