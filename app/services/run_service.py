"""The run service protocol that pages and REST routes use, and the models it returns.

`LocalRunService` (app.services.run_supervisor) supervises trainer subprocesses on this
machine; `RemoteRunService` drives a trainer-mode server with the same protocol.
`RunEventSink` is what `/callbacks` needs: trainers' event batches, checked per run token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from tunerdeck_common.events import Event
from tunerdeck_common.runstate import RunState


class RunError(Exception):
    """A request the service refuses; `message` says what to do, `errors` lists details."""

    def __init__(self, message: str, status: int = 400, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or []

    def payload(self) -> dict[str, Any]:
        return {"error": self.message, "errors": self.errors}


class CheckpointInfo(BaseModel):
    step: int
    path: str
    size_bytes: int


class RunInfo(BaseModel):
    id: str
    state: RunState
    config_name: str | None = None
    run_dir: str
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    lr: float | None = None
    it_per_s: float | None = None
    eta_s: float | None = None
    last_seq: int = 0
    exit_code: int | None = None
    message: str = ""
    log_tail: list[str] = Field(default_factory=list)
    queue_position: int | None = None  # 0 = next to start
    has_checkpoint: bool = False
    can_stop: bool = False
    can_resume: bool = False
    duration_s: float | None = None
    eval_loss: float | None = None  # the newest eval loss (held-out images), if any
    best_eval_loss: float | None = None


class ProgressPoint(BaseModel):
    step: int
    loss: float | None = None
    lr: float | None = None
    ts: float


class EvalPoint(BaseModel):
    step: int
    loss: float


class ValidationStep(BaseModel):
    step: int
    images: list[dict[str, str]]  # {"path", "prompt", "name", "seed"} ("": not given)


class RunDetail(BaseModel):
    """Everything the monitor view draws for one run."""

    run: RunInfo
    progress: list[ProgressPoint] = Field(default_factory=list)
    validations: list[ValidationStep] = Field(default_factory=list)
    evals: list[EvalPoint] = Field(default_factory=list)  # eval losses, by step
    checkpoints: list[CheckpointInfo] = Field(default_factory=list)
    logs: list[dict[str, Any]] = Field(default_factory=list)  # {"ts", "level", "message"}


@dataclass
class RunFile:
    """A file of a run's folder: on this machine's disk (`path`), or streamed from a trainer
    server (`chunks`, webui mode)."""

    name: str
    path: Path | None = None
    chunks: AsyncIterator[bytes] | None = None
    media_type: str | None = None
    size: int | None = None


def file_in_run(run_dir: str | Path, relative: str, run_id: str) -> Path:
    """`relative` inside `run_dir`, resolved; RunError 404 if it is outside or not a file."""
    missing = RunError(f"No file {relative!r} in run {run_id}.", 404)
    if not str(run_dir):  # a damaged run whose folder is unknown: never the working dir
        raise missing
    try:
        root = Path(run_dir).resolve()
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise missing
    except (OSError, ValueError):  # e.g. a NUL byte or a name too long
        raise missing from None
    return target


@runtime_checkable
class RunService(Protocol):
    async def ensure_started(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def list_runs(self) -> list[RunInfo]: ...

    async def get_run(self, run_id: str) -> RunInfo: ...

    async def get_detail(self, run_id: str, include_progress: bool = True) -> RunDetail: ...

    async def start_run(
        self, config: dict[str, Any] | None = None, config_name: str | None = None
    ) -> RunInfo: ...

    async def stop_run(self, run_id: str) -> RunInfo: ...

    async def kill_run(self, run_id: str) -> RunInfo: ...

    async def resume_run(self, run_id: str) -> RunInfo: ...

    async def delete_run(self, run_id: str) -> None: ...

    async def events_after(self, run_id: str, seq: int = 0) -> list[Event]: ...

    async def queue(self) -> list[RunInfo]: ...

    async def move_in_queue(self, run_id: str, position: int) -> list[RunInfo]: ...

    async def cancel_queued(self, run_id: str) -> None: ...

    async def open_file(self, run_id: str, path: str) -> RunFile: ...

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]: ...

    def install(self, app: Any) -> None:
        """Start with `app` (a FastAPI or NiceGUI app) and let go at its shut-down."""


@runtime_checkable
class RunEventSink(Protocol):
    def known(self, run_id: str) -> bool: ...

    def token_of(self, run_id: str) -> str | None: ...

    def ingest(self, event: Event) -> bool: ...
