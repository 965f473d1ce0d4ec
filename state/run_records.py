"""Run records: what the server knows about each run, one JSON file per run, written atomically.

They outlive the server process: after a restart the run service reads them back, finds the
runs that are still alive (pid + process start time) and marks the others failed.

A record file that cannot be read (truncated, garbage, empty) is never silently skipped:
`scan()` names it with the reason, `set_aside()` moves its bytes to `ID.json.damaged-TIME`
for inspection, and the run service rebuilds the record from the run folder or keeps the run
listed as `damaged` (see app.services.run_rebuild).
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from state.atomic import atomic_write_text
from tunerdeck_common.paths import data_dir
from tunerdeck_common.runstate import RunState

log = logging.getLogger(__name__)


_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    state: RunState = RunState.QUEUED
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
    eval_loss: float | None = None  # the newest and the lowest eval loss (held-out images)
    best_eval_loss: float | None = None
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

    def read(self, run_id: str) -> RunRecord:
        """The record; FileNotFoundError when there is none, ValueError (with the reason) when
        its file cannot be read as a record."""
        path = self.path_for(run_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot be read: {exc}") from None
        if not text.strip():
            raise ValueError("the file is empty")
        try:
            record = RunRecord.model_validate(json.loads(text))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
                for e in exc.errors()[:3]
            )
            raise ValueError(f"not a run record ({problems})") from None
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"not valid JSON ({str(exc)[:200]})") from None
        if record.id != run_id:
            raise ValueError(f"it names another run ({record.id!r})")
        return record

    def load(self, run_id: str) -> RunRecord | None:
        try:
            return self.read(run_id)
        except FileNotFoundError:
            return None
        except ValueError as exc:
            log.warning("run record %s %s", self.path_for(run_id), exc)
            return None

    def scan(self) -> tuple[list[RunRecord], dict[str, str]]:
        """Every readable record (oldest first), and {run id: reason} for the unreadable."""
        if not self.root.is_dir():
            return [], {}
        records: list[RunRecord] = []
        damaged: dict[str, str] = {}
        for path in sorted(self.root.glob("*.json")):
            if not _ID.match(path.stem):
                continue
            try:
                records.append(self.read(path.stem))
            except FileNotFoundError:
                continue
            except ValueError as exc:
                damaged[path.stem] = str(exc)
        return sorted(records, key=lambda r: r.created_at), damaged

    def load_all(self) -> list[RunRecord]:
        return self.scan()[0]

    def set_aside(self, run_id: str) -> Path | None:
        """Move an unreadable record file out of the way (kept, never deleted)."""
        path = self.path_for(run_id)
        target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            path.replace(target)
        except OSError as exc:
            log.warning("cannot move the damaged run record %s aside: %s", path, exc)
            return None
        return target

    def delete(self, run_id: str) -> None:
        self.path_for(run_id).unlink(missing_ok=True)
