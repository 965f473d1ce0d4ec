"""Server-side stall detection: a running run that has made no step for far longer than usual.

Contract: `StallClock` is pure bookkeeping. It learns each run's step times from its progress
events; once a run has STEPS_NEEDED intervals, it is stalled when the time since its last
step exceeds FACTOR x the median interval (and at least MIN_WAIT_S). Each stall is reported
once; the next step re-arms it. `StallWatch` feeds it from the event bus and, every
CHECK_EVERY_S, writes a stalled run's note, with the trainer's last output lines, into its
trainer.log (the run's history, where the server also notes each launch); the supervisor's
follower delivers it to the pages as a log line and the Monitor shows it as a banner. The note is a log line, not an event, because the
trainer owns the event sequence while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.services.event_bus import EventBus, Item
from app.services.run_launch import LOG_FILE
from tunerdeck_common.events import Event

log = logging.getLogger(__name__)

FACTOR = 10.0
MIN_WAIT_S = 30.0  # a fast run's hiccup (a validation, a checkpoint) is not a stall
STEPS_NEEDED = 3
CHECK_EVERY_S = 5.0
STALL_PREFIX = "--- tunerdeck: stalled:"  # how the note starts in trainer.log and the Monitor


@dataclass
class _RunClock:
    last_step: int = -1
    last_ts: float = 0.0
    intervals: list[float] = field(default_factory=list)
    reported: bool = False


@dataclass(frozen=True)
class Stall:
    run_id: str
    step: int
    waited_s: float
    median_s: float


class StallClock:
    def __init__(
        self, factor: float = FACTOR, min_wait_s: float = MIN_WAIT_S, needed: int = STEPS_NEEDED
    ) -> None:
        self.factor, self.min_wait_s, self.needed = factor, min_wait_s, needed
        self.runs: dict[str, _RunClock] = {}

    def step(self, run_id: str, step: int, ts: float) -> None:
        clock = self.runs.setdefault(run_id, _RunClock())
        if step <= clock.last_step:  # a resumed attempt starts over
            clock.intervals.clear()
        elif clock.last_step >= 0:
            clock.intervals.append((ts - clock.last_ts) / (step - clock.last_step))
            del clock.intervals[:-200]  # recent steps only
        clock.last_step, clock.last_ts, clock.reported = step, ts, False

    def forget(self, run_id: str) -> None:
        self.runs.pop(run_id, None)

    def stalled(self, now: float) -> list[Stall]:
        found: list[Stall] = []
        for run_id, clock in self.runs.items():
            if clock.reported or len(clock.intervals) < self.needed:
                continue
            median = statistics.median(clock.intervals)
            waited = now - clock.last_ts
            if waited > max(self.factor * median, self.min_wait_s):
                clock.reported = True
                found.append(Stall(run_id, clock.last_step, waited, median))
        return found


class StallWatch:
    """Follows the bus; asks the run service for a stalled run's folder and last output."""

    def __init__(self, bus: EventBus, service: Any, clock: StallClock | None = None) -> None:
        self.bus, self.service = bus, service
        self.clock = clock or StallClock()
        self._remove = bus.listen(self._on_item)
        self._task: asyncio.Task | None = None

    def _on_item(self, item: Item) -> None:
        if not isinstance(item, Event):
            return
        if item.type == "progress":
            self.clock.step(item.run_id, int(item.data["step"]), item.ts)
        elif item.type == "lifecycle" and item.data["state"] != "running":
            self.clock.forget(item.run_id)  # starting, stopping or over: not a training stall

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def stop(self) -> None:
        self._remove()
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            with contextlib.suppress(Exception):  # a vanished run must not stop the watch
                await self.check(time.time())

    async def check(self, now: float) -> list[str]:
        notes = []
        for stall in self.clock.stalled(now):
            try:
                run = await self.service.get_run(stall.run_id)
            except Exception:
                self.clock.forget(stall.run_id)
                continue
            if run.state != "running":
                continue
            output = [line.text for line in self.bus.lines(stall.run_id)] or list(run.log_tail)
            last = " | ".join(line.strip() for line in output[-5:] if line.strip())
            note = (
                f"{STALL_PREFIX} no step for {stall.waited_s:.0f} s after step {stall.step} "
                f"(usually {stall.median_s:.2g} s a step). Last output: {last or '(none)'}"
            )
            try:  # the supervisor follows this file: pages get the note as a log line
                with (Path(run.run_dir) / LOG_FILE).open("a", encoding="utf-8") as handle:
                    handle.write(note + "\n")
            except OSError as exc:
                log.warning("run %s: cannot note the stall: %s", stall.run_id, exc)
            notes.append(note)
        return notes
