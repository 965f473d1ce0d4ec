"""The event wire contract: what the trainer emits is what the server parses, kind by kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainer.events import EventSink
from tunerdeck_common.events import (
    DATA_MODELS,
    EventError,
    LifecycleEvent,
    ProgressEvent,
    parse_event,
    read_events,
)

# One valid payload per kind; a new kind in the union must get one here.
SAMPLES: dict[str, dict[str, Any]] = {
    "lifecycle": {"state": "running", "message": "training 4 steps"},
    "progress": {"step": 3, "max_steps": 4, "epoch": 1, "loss": 0.25, "lr": 1e-4},
    "stage": {"name": "caching latents", "done": 1, "total": 8},
    "validation": {"step": 4, "images": [{"path": "samples/4_0.png", "prompt": "a cat"}]},
    "checkpoint": {"step": 4, "path": "checkpoints/step-4"},
    "log": {"level": "warning", "message": "slow disk"},
    "error": {"message": "boom", "traceback": "Traceback ..."},
    "alert": {"kind": "nan", "message": "loss is NaN", "step": 3, "causes": ["lr too high"]},
    "eval": {"step": 4, "loss": 0.2, "images": 4},
}


def test_every_kind_has_a_sample() -> None:
    assert set(SAMPLES) == set(DATA_MODELS)


def test_trainer_emit_round_trips_through_server_parse(tmp_path: Path) -> None:
    sink = EventSink(tmp_path, "run-1")
    for kind, data in SAMPLES.items():
        assert sink.emit(kind, data) is not None
    sink.close()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    parsed = [parse_event(json.loads(line)) for line in lines]
    assert [e.type for e in parsed] == list(SAMPLES)
    assert [e.seq for e in parsed] == list(range(1, len(SAMPLES) + 1))
    for event in parsed:
        assert event.data == SAMPLES[event.type]  # nothing added, nothing lost
        typed = event.as_typed()
        assert typed.type == event.type and typed.data == DATA_MODELS[event.type](**event.data)
    assert read_events(tmp_path / "events.jsonl") == parsed
    assert isinstance(parsed[0].as_typed(), LifecycleEvent)
    assert isinstance(parsed[1].as_typed(), ProgressEvent)


def test_a_malformed_event_is_refused_at_the_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = EventSink(tmp_path, "run-2")
    assert sink.emit("progress", {"step": -1, "max_steps": 4}) is None
    assert sink.emit("lifecycle", {"state": "paused"}) is None
    assert sink.emit("log", {"message": "fine"}) is not None
    sink.close()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1]  # no gap for the refused ones
    err = capsys.readouterr().err
    assert "data.step" in err and "data.state" in err


def test_the_server_names_what_is_wrong() -> None:
    with pytest.raises(EventError, match="type"):
        parse_event({"v": 1, "run_id": "r", "seq": 1, "ts": 0.0, "type": "nope", "data": {}})
    with pytest.raises(EventError, match="max_steps"):
        parse_event(
            {"v": 1, "run_id": "r", "seq": 1, "ts": 0.0, "type": "progress", "data": {"step": 1}}
        )
