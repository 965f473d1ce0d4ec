"""The event wire contract between the trainer and the server, as pydantic models.

Every event: {"v": 1, "run_id", "seq" (per run, from 1, no gaps), "ts", "type", "data"}. The
typed events form one union discriminated on `type`; `data` of each kind is checked against
the keys its kind promises. The trainer (trainer/events.py) builds every event through
`make_event`, so what it writes to events.jsonl and POSTs to /callbacks is exactly what the
server's `parse_event` accepts; a malformed event is refused with a message that says what is
wrong, instead of breaking a chart later.

A new kind: add its data model, its `XEvent` class and put it in `TypedEvent`; nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from tunerdeck_common.runstate import LIFECYCLE_STATES

EVENTS_FILE = "events.jsonl"
SCHEMA_VERSION = 1

LifecycleState = Literal["starting", "running", "stopping", "stopped", "completed", "failed"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
assert get_args(LifecycleState) == LIFECYCLE_STATES, "lifecycle states follow RunState"


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


class EvalData(_Data):
    """The eval loss at `step`: the training loss on `images` held-out images at fixed noise
    (trainer/eval_loss.py), comparable across steps and runs."""

    step: int = Field(ge=0)
    loss: float
    images: int = Field(default=0, ge=0)


class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    run_id: str = Field(min_length=1, max_length=200)
    seq: int = Field(ge=1)
    ts: float


class LifecycleEvent(_Envelope):
    type: Literal["lifecycle"] = "lifecycle"
    data: LifecycleData


class ProgressEvent(_Envelope):
    type: Literal["progress"] = "progress"
    data: ProgressData


class StageEvent(_Envelope):
    type: Literal["stage"] = "stage"
    data: StageData


class ValidationEvent(_Envelope):
    type: Literal["validation"] = "validation"
    data: ValidationData


class CheckpointEvent(_Envelope):
    type: Literal["checkpoint"] = "checkpoint"
    data: CheckpointData


class LogEvent(_Envelope):
    type: Literal["log"] = "log"
    data: LogData


class ErrorEvent(_Envelope):
    type: Literal["error"] = "error"
    data: ErrorData


class AlertEvent(_Envelope):
    type: Literal["alert"] = "alert"
    data: AlertData


class EvalEvent(_Envelope):
    type: Literal["eval"] = "eval"
    data: EvalData


TypedEvent = Annotated[
    LifecycleEvent
    | ProgressEvent
    | StageEvent
    | ValidationEvent
    | CheckpointEvent
    | LogEvent
    | ErrorEvent
    | AlertEvent
    | EvalEvent,
    Field(discriminator="type"),
]
TYPED_EVENT: TypeAdapter[TypedEvent] = TypeAdapter(TypedEvent)

# kind -> its data model, derived from the union so the two cannot disagree.
DATA_MODELS: dict[str, type[_Data]] = {
    cls.model_fields["type"].default: cls.model_fields["data"].annotation
    for cls in get_args(get_args(TypedEvent)[0])
}
EventType = Literal[
    "lifecycle", "progress", "stage", "validation", "checkpoint", "log", "error", "alert", "eval"
]
assert set(get_args(EventType)) == set(DATA_MODELS), "EventType lists every kind of TypedEvent"


class Event(BaseModel):
    """One event as the server keeps it: the envelope with `data` as a plain dict (what the
    record, the SSE stream and the charts read), validated against its kind's model."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    run_id: str = Field(min_length=1, max_length=200)
    seq: int = Field(ge=1)
    ts: float
    type: EventType
    data: dict[str, Any]

    @model_validator(mode="after")
    def _check_data(self) -> Event:
        typed = DATA_MODELS[self.type].model_validate(self.data)
        # Keep the values as the contract reads them ("0.5" is the number 0.5), so no reader
        # (charts, records) ever meets a string where a number belongs.
        read = typed.model_dump(exclude_unset=True)
        if read != self.data:
            object.__setattr__(self, "data", {**self.data, **read})
        return self

    def typed(self) -> _Data:
        """`data` as its kind's model (validated already, so this cannot fail)."""
        return DATA_MODELS[self.type].model_validate(self.data)

    def as_typed(self) -> TypedEvent:
        """The whole event as its kind's member of the union."""
        return TYPED_EVENT.validate_python(self.model_dump())


def make_event(
    run_id: str, seq: int, ts: float, type_: str, data: dict[str, Any]
) -> dict[str, Any]:
    """The JSON-able dict of one event, checked against the contract (ValueError when it does
    not follow it). `data` keeps the keys it was given, defaults are not added: the bytes the
    trainer sends are the ones it was asked to send."""
    raw = {"v": SCHEMA_VERSION, "run_id": run_id, "seq": seq, "ts": ts, "type": type_, "data": data}
    try:
        TYPED_EVENT.validate_python(raw)
    except ValidationError as exc:
        raise EventError(describe(exc)) from None
    return raw


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
