"""A long run's monitor: the charts show a screen's worth of points that keep every spike and
dip, and the full record (every step) is one link away."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from nicegui.testing import User

from app.services.chart_data import MAX_POINTS, downsample
from state.run_records import RunRecord, RunRecordStore

from .helpers import element

STEPS = 20_000
SPIKE_STEP, DIP_STEP = 12_345, 777


def loss_at(step: int) -> float:
    if step == SPIKE_STEP:
        return 9.0
    if step == DIP_STEP:
        return 0.001
    return 1.0 + (step % 7) * 0.01


def seed_run(home: Path) -> str:
    """A finished run of STEPS steps in history, written as the trainer would have."""
    run_id = "long-run"
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True)
    now = time.time()
    events = [
        {
            "v": 1,
            "run_id": run_id,
            "seq": step,
            "ts": now - STEPS + step,
            "type": "progress",
            "data": {"step": step, "max_steps": STEPS, "loss": loss_at(step), "lr": 1e-4},
        }
        for step in range(1, STEPS + 1)
    ]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    RunRecordStore(home / "run_records").save(
        RunRecord(
            id=run_id,
            state="completed",
            run_dir=str(run_dir),
            started_at=now - STEPS,
            ended_at=now,
            step=STEPS,
            max_steps=STEPS,
            last_seq=STEPS,
            attempts=1,
        )
    )
    return run_id


@pytest.fixture
def long_run(runs_home: Path) -> str:
    return seed_run(runs_home)


async def test_the_monitor_draws_a_screen_of_points_and_links_every_step(
    long_run: str, app_user: User
) -> None:
    await app_user.open(f"/monitor/{long_run}")
    chart = element(app_user, "loss-chart")
    raw = chart.options["series"][0]["data"]
    assert len(raw) <= MAX_POINTS
    drawn = dict((int(step), value) for step, value in raw)
    assert drawn[SPIKE_STEP] == 9.0 and drawn[DIP_STEP] == 0.001  # no extreme is thinned away
    assert min(drawn) == 1 and max(drawn) == STEPS
    link = element(app_user, "full-record")
    response = await app_user.http_client.get(link.props["href"])
    assert response.status_code == 200
    steps = [json.loads(line)["data"]["step"] for line in response.text.splitlines()]
    assert steps == list(range(1, STEPS + 1))


def test_downsampling_keeps_each_stretch_low_and_high() -> None:
    values = [float((i * 7919) % 1000) for i in range(100_000)]
    steps = list(range(1, 100_001))
    points = downsample(steps, values, 500)
    assert len(points) <= 500
    assert [p[0] for p in points] == sorted(p[0] for p in points)  # still in step order
    assert points[0] == [1, values[0]] and points[-1] == [100_000, values[-1]]
    kept = {p[0] for p in points}
    buckets = (500 - 2) // 2
    for b in range(buckets):  # every slice's low and high are drawn
        lo, hi = 100_000 * b // buckets, 100_000 * (b + 1) // buckets
        part: list[Any] = values[lo:hi]
        assert steps[lo + part.index(min(part))] in kept
        assert steps[lo + part.index(max(part))] in kept
    short = downsample([1, 2, 3], [3.0, 1.0, 2.0], 500)
    assert short == [[1, 3.0], [2, 1.0], [3, 2.0]]  # a short series is drawn as it is


def test_history_folded_at_once_draws_what_point_by_point_would() -> None:
    from array import array

    from app.services.chart_data import ChartData

    points = [(s, None if s % 5 == 0 else 1.0 / s, 1e-4 if s % 3 else None) for s in range(1, 5001)]
    one_by_one = ChartData(weight=0.6, max_points=10_000)
    one_by_one.extend(points)
    at_once = ChartData(weight=0.6, max_points=10_000)
    nan = float("nan")
    at_once.reset_arrays(
        array("q", [s for s, _, _ in points]),
        array("d", [nan if loss is None else loss for _, loss, _ in points]),
        array("d", [nan if lr is None else lr for _, _, lr in points]),
    )
    for a, b in zip(
        one_by_one.loss_series() + one_by_one.lr_series(),
        at_once.loss_series() + at_once.lr_series(),
        strict=True,
    ):
        assert [p[0] for p in a["data"]] == [p[0] for p in b["data"]]
        assert all(abs(x[1] - y[1]) < 1e-12 for x, y in zip(a["data"], b["data"], strict=True))
    one_by_one.add(5001, 0.5, None)  # and both go on from there alike
    at_once.add(5001, 0.5, None)
    last_a, last_b = one_by_one.loss_series()[1]["data"][-1], at_once.loss_series()[1]["data"][-1]
    assert last_a[0] == last_b[0] == 5001 and abs(last_a[1] - last_b[1]) < 1e-12
