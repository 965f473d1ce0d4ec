"""The monitor's chart series: thinned for long runs, smoothed, and redrawn after a resume."""

from __future__ import annotations

import math

from app.pages.monitor_view import MAX_POINTS, ChartData, loss_series


def test_a_long_run_is_thinned_but_keeps_its_first_and_last_step() -> None:
    chart = ChartData(weight=0.0)
    for step in range(1, 100_001):
        chart.add(step, 1.0 / step, 1e-4)
    raw, smoothed = chart.loss_series()
    for series in (raw["data"], smoothed["data"], chart.lr_series()[0]["data"]):
        assert len(series) <= MAX_POINTS + 1
        assert series[0][0] == 1 and series[-1][0] == 100_000
    assert raw["data"][-1][1] == 1.0 / 100_000  # weight 0: smoothed equals raw
    assert smoothed["data"][-1][1] == raw["data"][-1][1]


def test_smoothing_is_a_debiased_moving_average_and_can_change() -> None:
    chart = ChartData(weight=0.5)
    chart.extend([(1, 4.0, None), (2, None, None), (3, 2.0, None)])
    smoothed = chart.loss_series()[1]["data"]
    assert [s for s, _ in smoothed] == [1, 3]  # a step without loss draws no point
    assert smoothed[0][1] == 4.0  # debiased: the first value is itself
    assert math.isclose(smoothed[1][1], (0.5 * 0.5 * 4.0 + 0.5 * 2.0) / 0.75)
    chart.set_weight(0.0)
    assert chart.loss_series()[1]["data"] == [[1, 4.0], [3, 2.0]]
    assert chart.lr_series()[0]["data"] == []


def test_a_resumed_run_replaces_the_steps_a_crashed_attempt_drew() -> None:
    chart = ChartData(weight=0.0)
    chart.extend([(step, float(step), None) for step in range(1, 11)])
    chart.add(7, 70.0, None)  # resumed from the checkpoint at step 6
    assert chart.loss_series()[0]["data"] == [[s, float(s)] for s in range(1, 7)] + [[7, 70.0]]


def test_compare_series_is_named_after_the_run() -> None:
    raw, smoothed = loss_series([(1, 1.0), (2, 0.5)], 0.6, name="run-a")
    assert raw["name"] == "run-a" and smoothed["name"] == "run-a (smoothed)"
    assert [s for s, _ in smoothed["data"]] == [1, 2]
