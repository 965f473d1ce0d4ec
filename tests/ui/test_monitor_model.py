"""The monitor's event folding: what a batch of events changes on the page, with no page."""

from __future__ import annotations

from typing import Any

from app.services.event_bus import LogLine
from app.services.monitor_model import MonitorModel
from app.services.run_service import EvalPoint
from app.services.stall import STALL_PREFIX
from tunerdeck_common.events import Event


def ev(seq: int, type_: str, **data: Any) -> Event:
    return Event(run_id="r1", seq=seq, ts=float(seq), type=type_, data=data)


def progress(seq: int, step: int, loss: float) -> Event:
    return ev(seq, "progress", step=step, max_steps=10, loss=loss, lr=1e-4)


def curve(model: MonitorModel, name: str) -> list[list[float]]:
    return next(s["data"] for s in model.loss_series() if s["name"] == name)


def test_events_already_loaded_are_not_drawn_twice() -> None:
    model = MonitorModel(smoothing=0.0)
    model.chart.reset([(1, 1.0, 1e-4), (2, 0.5, 1e-4)])
    model.load(last_seq=2, evals=[EvalPoint(step=2, loss=0.9)])
    changes = model.fold([progress(2, 2, 0.5), progress(3, 3, 0.25)])
    assert curve(model, "loss") == [[1, 1.0], [2, 0.5], [3, 0.25]]
    assert changes.charts and changes.latest == progress(3, 3, 0.25).data
    assert curve(model, "eval loss") == [[2, 0.9]]  # from the detail


def test_eval_losses_are_drawn_beside_the_loss_and_a_resume_replaces_later_ones() -> None:
    model = MonitorModel(smoothing=0.0)
    assert [s["name"] for s in model.loss_series()] == ["loss", "loss (smoothed)"]
    changes = model.fold(
        [
            progress(1, 2, 1.0),
            ev(2, "eval", step=2, loss=0.8, images=3),
            ev(3, "eval", step=4, loss=0.6),
            ev(4, "eval", step=6, loss=0.7),
        ]
    )
    assert changes.charts and not changes.refetch
    assert curve(model, "eval loss") == [[2, 0.8], [4, 0.6], [6, 0.7]]
    assert (model.evals.last, model.evals.best) == (0.7, 0.6)
    model.fold([ev(5, "eval", step=4, loss=0.65)])  # resumed from the checkpoint at step 4
    assert curve(model, "eval loss") == [[2, 0.8], [4, 0.65]]


def test_a_progress_point_that_arrives_late_asks_for_the_series_again() -> None:
    model = MonitorModel(smoothing=0.0)
    model.fold([progress(1, 1, 1.0), progress(5, 2, 0.5)])
    changes = model.fold([progress(3, 9, 9.0)])  # seq 3 < 5: a gap filled from events.jsonl
    assert changes.reload_points and changes.refetch and not changes.charts
    assert curve(model, "loss") == [[1, 1.0], [2, 0.5]]


def test_lifecycle_errors_stages_alerts_and_output_lines() -> None:
    model = MonitorModel()
    changes = model.fold(
        [
            ev(1, "stage", name="caching latents", done=1, total=4),
            ev(2, "lifecycle", state="failed", message="boom"),
            ev(3, "error", message="RuntimeError: x", traceback="..."),
            ev(4, "log", level="warning", message="careful"),
            ev(5, "alert", kind="nan", message="loss is nan", step=3),
            ev(6, "validation", step=2, images=[{"path": "a.png", "prompt": "p"}]),
            LogLine(run_id="r1", text=f"{STALL_PREFIX} no step for 10 min", ts=7.0),
        ]
    )
    assert model.stage == {"name": "caching latents", "done": 1, "total": 4}
    assert changes.toasts == [
        ("Run r1: failed. boom", "negative"),
        ("Run r1 error: RuntimeError: x", "negative"),
    ]
    assert [(e["level"], e["message"]) for e in changes.logs] == [
        ("info", "failed: boom"),
        ("error", "RuntimeError: x"),
        ("warning", "careful"),
        ("output", f"{STALL_PREFIX} no step for 10 min"),
    ]
    assert [a["kind"] for a in changes.alerts] == ["nan", "stalled"]
    assert changes.ask_service and changes.checkpoints and changes.gallery
