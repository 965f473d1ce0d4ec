"""Run records: what the server knows about each run, one JSON file per run, written atomically.

They outlive the server process: after a restart the run service reads them back, finds the
runs that are still alive (pid + process start time) and marks the others failed.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from state.atomic import atomic_write_text
from state.paths import data_dir

log = logging.getLogger(__name__)

RunState = Literal["queued", "starting", "running", "stopping", "stopped", "completed", "failed"]
ACTIVE_STATES: frozenset[str] = frozenset({"starting", "running", "stopping"})
FINAL_STATES: frozenset[str] = frozenset({"stopped", "completed", "failed"})

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    state: RunState = "queued"
    config_name: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)  # the explicit values the run started with
    run_dir: str
    token: str = ""
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    queue_order: float = 0.0
    pid: int | None = None
    pid_create_time: float | None = None
    command: list[str] = Field(default_factory=list)
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    last_seq: int = 0
    exit_code: int | None = None
    message: str = ""
    log_tail: list[str] = Field(default_factory=list)
    attempts: int = 0  # processes launched for this run (1 + resumes)
    resume: bool = False  # when it leaves the queue: resume from the latest checkpoint


class RunRecordStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else data_dir() / "run_records"

    def path_for(self, run_id: str) -> Path:
        if not _ID.match(run_id):
            raise ValueError(f"not a valid run id: {run_id!r}")
        return self.root / f"{run_id}.json"

    def save(self, record: RunRecord) -> None:
        atomic_write_text(self.path_for(record.id), record.model_dump_json(indent=1))

    def load(self, run_id: str) -> RunRecord | None:
        path = self.path_for(run_id)
        try:
            return RunRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, ValidationError) as exc:
            log.warning("run record %s cannot be read (%s); ignored", path, exc)
            return None

    def load_all(self) -> list[RunRecord]:
        if not self.root.is_dir():
            return []
        records = [self.load(p.stem) for p in sorted(self.root.glob("*.json")) if _ID.match(p.stem)]
        return sorted((r for r in records if r is not None), key=lambda r: r.created_at)

    def delete(self, run_id: str) -> None:
        self.path_for(run_id).unlink(missing_ok=True)
