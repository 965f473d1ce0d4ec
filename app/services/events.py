"""The event schema the trainer writes (trainer/events.py) as pydantic models, and readers for events.jsonl.

Every event: {"v": 1, "run_id", "seq" (per run, from 1), "ts", "type", "data"}; `data` is
checked against the keys its type promises, so a malformed event is refused with a message
that says what is wrong, instead of breaking a chart later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

EVENTS_FILE = "events.jsonl"
SCHEMA_VERSION = 1

EventType = Literal[
    "lifecycle", "progress", "stage", "validation", "checkpoint", "log", "error", "alert"
]
LifecycleState = Literal["starting", "running", "stopping", "stopped", "completed", "failed"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class _Data(BaseModel):
    # Extra keys are kept: a newer trainer may add some, an older server should not refuse them.
    model_config = ConfigDict(extra="allow")


class LifecycleData(_Data):
    state: LifecycleState
    message: str = ""


class ProgressData(_Data):
    step: int = Field(ge=0)
    max_steps: int = Field(ge=0)
    epoch: int = 0
    loss: float | None = None
    lr: float | None = None
    it_per_s: float | None = None
    eta_s: float | None = None


class StageData(_Data):
    """What a starting run is doing before step 1 (loading model, preparing datasets, caching
    latents, ...); `done`/`total` count items where the stage has them."""

    name: str = Field(min_length=1, max_length=200)
    done: int | None = Field(default=None, ge=0)
    total: int | None = Field(default=None, ge=0)


class AlertData(_Data):
    """Something that needs the user's eyes: "nan" (the trainer stopped at a non-finite loss,
    `causes` lists what usually causes it) or "stalled" (no step for far longer than usual,
    `lines` holds the trainer's last output)."""

    kind: Literal["nan", "stalled"]
    message: str = Field(min_length=1)
    step: int | None = Field(default=None, ge=0)
    causes: list[str] = Field(default_factory=list)
    lines: list[str] = Field(default_factory=list)


class ValidationImage(_Data):
    path: str
    prompt: str = ""


class ValidationData(_Data):
    step: int = Field(ge=0)
    images: list[ValidationImage]


class CheckpointData(_Data):
    step: int = Field(ge=0)
    path: str


class LogData(_Data):
    level: LogLevel = "info"
    message: str


class ErrorData(_Data):
    message: str
    traceback: str = ""


DATA_MODELS: dict[str, type[_Data]] = {
    "lifecycle": LifecycleData,
    "progress": ProgressData,
    "stage": StageData,
    "validation": ValidationData,
    "checkpoint": CheckpointData,
    "log": LogData,
    "error": ErrorData,
    "alert": AlertData,
}


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    run_id: str = Field(min_length=1, max_length=200)
    seq: int = Field(ge=1)
    ts: float
    type: EventType
    data: dict[str, Any]

    @model_validator(mode="after")
    def _check_data(self) -> Event:
        DATA_MODELS[self.type].model_validate(self.data)
        return self

    def typed(self) -> _Data:
        """`data` as its type's model (validated already, so this cannot fail)."""
        return DATA_MODELS[self.type].model_validate(self.data)


class EventError(ValueError):
    """One event that does not follow the schema; `message` says which key and why."""


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_event(raw: Any) -> Event:
    if not isinstance(raw, dict):
        raise EventError(f"an event must be a JSON object, got {type(raw).__name__}")
    try:
        return Event.model_validate(raw)
    except ValidationError as exc:
        raise EventError(describe(exc)) from None


def iter_event_lines(
    path: Path, offset: int = 0, skip: Callable[[Any], bool] | None = None
) -> Iterator[tuple[int, Event | None]]:
    """(offset after the line, event) for each complete line from `offset`; None for a line
    that is not a valid event (or that `skip(raw dict)` says is already known, which saves
    validating it again). A last line without its newline (still being written, or torn by a
    crash) is not returned, so a follower re-reads it when it is complete."""
    try:
        handle = path.open("rb")
    except OSError:
        return
    with handle:
        handle.seek(offset)
        position = offset
        for line in handle:
            if not line.endswith(b"\n"):
                return
            position += len(line)
            text = line.strip()
            if not text:
                continue
            try:
                raw = json.loads(text)
                if skip is not None and skip(raw):
                    yield position, None
                    continue
                yield position, parse_event(raw)
            except (ValueError, TypeError, EventError):
                yield position, None


def read_events(path: Path, after: int = 0) -> list[Event]:
    """Every valid event in `path` with seq > `after`, in seq order, each seq once."""
    seen: dict[int, Event] = {}
    for _, event in iter_event_lines(path):
        if event is not None and event.seq > after:
            seen.setdefault(event.seq, event)
    return [seen[s] for s in sorted(seen)]


def event_line(event: Event) -> str:
    return json.dumps(event.model_dump(), separators=(",", ":")) + "\n"
