"""What one run's events add up to: its record fields (state, step, loss...) and the series
the monitor draws (progress points, validation images, log messages). Pure bookkeeping."""

from __future__ import annotations

import bisect
import collections
from pathlib import Path
from typing import Any, NamedTuple

from app.services.event_bus import LogLine
from app.services.events import Event
from app.services.run_service import CheckpointInfo, ProgressPoint, ValidationStep
from state.run_records import RunRecord

MAX_LOGS = 2000


class Point(NamedTuple):
    step: int
    loss: float | None
    lr: float | None
    ts: float

    def model(self) -> ProgressPoint:
        return ProgressPoint.model_construct(step=self.step, loss=self.loss, lr=self.lr, ts=self.ts)


LOG_TAIL_LINES = 30


class RunLive:
    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self.progress: list[Point] = []  # compact: long runs have 100k+ of them
        self.validations: dict[int, ValidationStep] = {}
        self.logs: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_LOGS)
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.lr: float | None = None
        self.it_per_s: float | None = None
        self.eta_s: float | None = None
        self.final_seen = False  # a stopped/completed/failed event from the current process
        self.lifecycle_seq = 0
        self.progress_seq = 0
        self.loaded = False  # events.jsonl read in (history runs are read on first look)
        self.saved_at = 0.0

    def apply(self, event: Event) -> bool:
        """Fold one event in; True when the record changed in a way worth saving now."""
        rec = self.record
        rec.last_seq = max(rec.last_seq, event.seq)
        data = event.data
        if event.type == "lifecycle":
            if event.seq < self.lifecycle_seq:  # a gap filled late: older than the state we show
                return False
            self.lifecycle_seq = event.seq
            state = data["state"]
            rec.state = state
            rec.message = data.get("message", "") or rec.message
            if state in ("stopped", "completed", "failed"):
                self.final_seen = True
                rec.ended_at = event.ts
                self.it_per_s = self.eta_s = None
            elif state == "starting":
                self.final_seen = False
            self.logs.append(
                {"ts": event.ts, "level": "info", "message": f"{state}: {data.get('message', '')}"}
            )
            return True
        if event.type == "progress":
            point = Point(int(data["step"]), data.get("loss"), data.get("lr"), event.ts)
            if event.seq < self.progress_seq:  # a gap filled late: slot it in, keep the rest
                steps = [p.step for p in self.progress]
                at = bisect.bisect_left(steps, point.step)
                if at == len(steps) or steps[at] != point.step:
                    self.progress.insert(at, point)
                return False
            self.progress_seq = event.seq
            rec.step = int(data["step"])
            rec.max_steps = int(data["max_steps"])
            if data.get("loss") is not None:
                rec.loss = float(data["loss"])
            self.lr = data.get("lr")
            self.it_per_s = data.get("it_per_s")
            self.eta_s = data.get("eta_s")
            # A resumed run repeats no step; drop points a crashed attempt wrote past its checkpoint.
            while self.progress and self.progress[-1].step >= rec.step:
                self.progress.pop()
            self.progress.append(point)
            return False
        if event.type == "validation":
            images = [
                {"path": str(i.get("path", "")), "prompt": str(i.get("prompt", ""))}
                for i in data["images"]
            ]
            self.validations[int(data["step"])] = ValidationStep(
                step=int(data["step"]), images=images
            )
            return False
        if event.type == "checkpoint":
            rec.step = max(rec.step, int(data["step"]))
            return True
        if event.type == "log":
            self.logs.append(
                {"ts": event.ts, "level": data.get("level", "info"), "message": data["message"]}
            )
            return False
        if event.type == "error":
            rec.message = data["message"]
            self.logs.append({"ts": event.ts, "level": "error", "message": data["message"]})
            return True
        return False

    def add_line(self, line: LogLine) -> None:
        self.lines.append(line.text)
        level = "error" if ("Traceback" in line.text or "Error" in line.text) else "output"
        self.logs.append({"ts": line.ts, "level": level, "message": line.text})

    def validation_steps(self) -> list[ValidationStep]:
        return [self.validations[s] for s in sorted(self.validations)]


def checkpoints_on_disk(run_dir: Path) -> list[CheckpointInfo]:
    """Whole checkpoints (the trainer renames a finished temp dir into place), newest last."""
    folder = run_dir / "checkpoints"
    found: list[CheckpointInfo] = []
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        name = path.name
        if not (path.is_dir() and name.startswith("checkpoint-") and name[11:].isdigit()):
            continue
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        found.append(CheckpointInfo(step=int(name[11:]), path=str(path), size_bytes=size))
    return sorted(found, key=lambda c: c.step)


def has_checkpoint(run_dir: Path) -> bool:
    """Cheap (no sizes): is there at least one whole checkpoint?"""
    try:
        return any(
            p.name.startswith("checkpoint-") and p.name[11:].isdigit()
            for p in (run_dir / "checkpoints").iterdir()
        )
    except OSError:
        return False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]
