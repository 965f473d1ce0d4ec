"""RunQueue: the runs waiting for a trainer, in their order (`queue_order` of each record),
and the dispatcher that launches the first ones while fewer than `max_parallel` run.

A run admitted by start_run brings its validated values along; a resumed run (or one found
queued after a restart) has its saved config validated when it is launched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from app.services.run_history import RunHistory
from app.services.run_live import RunLive
from app.services.run_processes import ProcessSupervisor
from app.services.run_service import RunError
from tunerdeck_common.runstate import RunState

# effective_of(config) -> the validated values of a saved run config
EffectiveOf = Callable[[dict[str, Any]], dict[str, Any]]


class RunQueue:
    def __init__(
        self,
        history: RunHistory,
        processes: ProcessSupervisor,
        effective_of: EffectiveOf,
        max_parallel: int = 1,
    ) -> None:
        self.history = history
        self.processes = processes
        self.effective_of = effective_of
        self.max_parallel = max_parallel
        self._effective: dict[str, dict[str, Any]] = {}  # admitted, not launched yet
        self._lock = asyncio.Lock()

    def waiting(self) -> list[RunLive]:
        queued = [
            live for live in self.history.runs.values() if live.record.state == RunState.QUEUED
        ]
        return sorted(queued, key=lambda live: live.record.queue_order)

    def positions(self) -> dict[str, int]:
        return {live.record.id: index for index, live in enumerate(self.waiting())}

    def admitted(self, run_id: str, effective: dict[str, Any]) -> None:
        """A new run (queued by its record): its validated values, kept for its launch."""
        self._effective[run_id] = effective

    def requeue(self, live: RunLive, message: str) -> None:
        """A run that ran before, at the end of the queue again (a resume)."""
        live.record.state = RunState.QUEUED
        live.record.queue_order = time.time()
        live.record.message = message
        self._effective.pop(live.record.id, None)
        self.history.save(live)

    def waiting_run(self, run_id: str) -> RunLive:
        live = self.history.live(run_id)
        if live.record.state != RunState.QUEUED:
            raise RunError(f"Run {run_id} is {live.record.state}, not waiting in the queue.", 409)
        return live

    def move(self, live: RunLive, position: int) -> list[RunLive]:
        order = [q for q in self.waiting() if q is not live]
        order.insert(max(0, min(position, len(order))), live)
        base = time.time()
        for index, item in enumerate(order):
            item.record.queue_order = base + index
            self.history.save(item)
        return order

    def drop(self, run_id: str) -> None:
        self._effective.pop(run_id, None)

    async def dispatch(self) -> None:
        async with self._lock:
            while len(self.processes.running) < self.max_parallel:
                waiting = self.waiting()
                if not waiting:
                    return
                live = waiting[0]
                effective = self._effective.pop(live.record.id, None)
                if effective is None:
                    effective = self.effective_of(live.record.config)
                await self.processes.launch(live, effective)
