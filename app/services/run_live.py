"""What one run's events add up to: its record fields (state, step, loss...) and the series
the monitor draws (progress points, validation images, log messages). Pure bookkeeping."""

from __future__ import annotations

import bisect
import collections
from array import array
from pathlib import Path
from typing import Any

from app.services.event_bus import LogLine
from app.services.run_follow import clip_line
from app.services.run_service import CheckpointInfo, EvalPoint, ProgressPoint, ValidationStep
from state.run_records import RunRecord
from tunerdeck_common.events import Event
from tunerdeck_common.runstate import RunState

MAX_LOGS = 2000
NAN = float("nan")


class ProgressSeries:
    """Every progress point of a run in flat arrays (32 bytes a step: long runs have 100k+),
    ordered by step."""

    def __init__(self) -> None:
        self.steps = array("q")
        self.losses = array("d")  # NaN: no loss reported at that step
        self.lrs = array("d")
        self.ts = array("d")

    def __len__(self) -> int:
        return len(self.steps)

    def append(self, step: int, loss: float | None, lr: float | None, ts: float) -> None:
        """The newest point; a resumed attempt repeats no step, so points at or past `step`
        (drawn by a crashed attempt after its checkpoint) are dropped."""
        cut = bisect.bisect_left(self.steps, step)
        if cut < len(self.steps):
            for column in (self.steps, self.losses, self.lrs, self.ts):
                del column[cut:]
        self._put(len(self.steps), step, loss, lr, ts)

    def insert(self, step: int, loss: float | None, lr: float | None, ts: float) -> None:
        """A point that arrived late (a gap filled from events.jsonl): slot it in by step."""
        at = bisect.bisect_left(self.steps, step)
        if at == len(self.steps) or self.steps[at] != step:
            self._put(at, step, loss, lr, ts)

    def _put(self, at: int, step: int, loss: float | None, lr: float | None, ts: float) -> None:
        self.steps.insert(at, step)
        self.losses.insert(at, NAN if loss is None else loss)
        self.lrs.insert(at, NAN if lr is None else lr)
        self.ts.insert(at, ts)

    def models(self) -> list[ProgressPoint]:
        return [
            ProgressPoint.model_construct(
                step=step,
                loss=None if loss != loss else loss,  # NaN != NaN
                lr=None if lr != lr else lr,
                ts=ts,
            )
            for step, loss, lr, ts in zip(self.steps, self.losses, self.lrs, self.ts, strict=True)
        ]


LOG_TAIL_LINES = 30


class RunLive:
    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self.progress = ProgressSeries()
        self.validations: dict[int, ValidationStep] = {}
        self.evals: dict[int, float] = {}  # eval loss by step
        self.eval_seq = 0
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
            state = RunState(data["state"])
            rec.state = state
            rec.message = data.get("message", "") or rec.message
            if state.is_final:
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
            args = (int(data["step"]), data.get("loss"), data.get("lr"), event.ts)
            if event.seq < self.progress_seq:  # a gap filled late: slot it in, keep the rest
                self.progress.insert(*args)
                return False
            self.progress_seq = event.seq
            rec.step = int(data["step"])
            rec.max_steps = int(data["max_steps"])
            if data.get("loss") is not None:
                rec.loss = float(data["loss"])
            self.lr = data.get("lr")
            self.it_per_s = data.get("it_per_s")
            self.eta_s = data.get("eta_s")
            self.progress.append(*args)
            return False
        if event.type == "validation":
            images = [
                {
                    "path": str(i.get("path", "")),
                    "prompt": str(i.get("prompt", "")),
                    # a prompt library entry's name and the image's seed (the samples grid)
                    "name": str(i.get("name") or ""),
                    "seed": "" if i.get("seed") is None else str(i["seed"]),
                }
                for i in data["images"]
            ]
            self.validations[int(data["step"])] = ValidationStep(
                step=int(data["step"]), images=images
            )
            return False
        if event.type == "eval":
            step, loss = int(data["step"]), float(data["loss"])
            if self.evals and step <= max(self.evals) and event.seq > self.eval_seq:
                # A resumed attempt: what a crashed attempt measured past its checkpoint goes.
                self.evals = {s: v for s, v in self.evals.items() if s < step}
            self.eval_seq = max(self.eval_seq, event.seq)
            self.evals[step] = loss
            rec.eval_loss = self.evals[max(self.evals)]
            rec.best_eval_loss = min(self.evals.values())
            return True
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

    def eval_points(self) -> list[EvalPoint]:
        return [EvalPoint(step=s, loss=self.evals[s]) for s in sorted(self.evals)]

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
    return [clip_line(line) for line in text.splitlines() if line.strip()][-lines:]
