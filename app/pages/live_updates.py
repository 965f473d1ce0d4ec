"""Throttled delivery of bus items to one browser client.

Each item is appended to a per-client list (cheap, nothing dropped); the page's handler runs
with everything that arrived since its last run, in the client's context. An item arriving
after a quiet spell is shown at once; under load runs are spaced by `interval` (25 ms: well
under what a person notices) or, when the handler itself is slow, by a few times its own
CPU time (up to `max_interval`), so a busy server coalesces more instead of falling behind.
CPU time, not wall time: on a machine busy with other processes a handler's wall time is
mostly waiting for a core, and spacing by it delayed every update without saving any work.
Pages throttle their expensive redraws (charts) on their own timers.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable

from nicegui import background_tasks, ui

from app.services.event_bus import EventBus, Item

log = logging.getLogger(__name__)

Handler = Callable[[list[Item]], Awaitable[None] | None]

UPDATE_INTERVAL_S = 0.025
MAX_INTERVAL_S = 0.25
BUSY_FACTOR = 3.0  # space runs by this many times the last run's CPU time


class LiveUpdates:
    def __init__(
        self,
        bus: EventBus,
        handler: Handler,
        *,
        accept: Callable[[Item], bool] | None = None,
        interval: float = UPDATE_INTERVAL_S,
        max_interval: float = MAX_INTERVAL_S,
        held: bool = False,
    ) -> None:
        self.bus = bus
        self.handler = handler
        self.accept = accept
        self.interval = interval
        self.max_interval = max(interval, max_interval)
        self._gap = interval  # the spacing now: grows with the handler's own duration
        self.client = ui.context.client
        self._pending: list[Item] = []
        self._last = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._running = False
        self._closed = False
        self._held = held  # collecting only, until release(): the page is still being built
        self._remove = bus.listen(self._on_item)
        self.client.on_delete(self.close)

    def close(self) -> None:
        self._closed = True
        self._remove()
        if self._handle is not None:
            self._handle.cancel()

    def _on_item(self, item: Item) -> None:
        if self._closed or (self.accept is not None and not self.accept(item)):
            return
        self._pending.append(item)
        self._schedule()

    def poke(self) -> None:
        """Run the handler soon even without new items (e.g. after a button press)."""
        self._schedule()

    def release(self) -> None:
        """Start delivering, with everything collected while held."""
        self._held = False
        if self._pending:
            self._schedule()

    def _schedule(self) -> None:
        if self._handle is not None or self._running or self._held:
            return
        delay = max(0.0, self._last + self._gap - time.monotonic())
        self._handle = asyncio.get_running_loop().call_later(delay, self._flush)

    def _flush(self) -> None:
        self._handle = None
        if self._closed:
            return
        self._running = True
        background_tasks.create(self._run(), name="live-updates")

    async def _run(self) -> None:
        self._last = time.monotonic()
        started = time.thread_time()  # this thread runs the event loop: the server's work
        try:
            items, self._pending = self._pending, []
            with self.client:
                result = self.handler(items)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("live update failed")
        finally:
            took = time.thread_time() - started
            self._gap = min(self.max_interval, max(self.interval, BUSY_FACTOR * took))
            self._running = False
            if self._pending and not self._closed:
                self._schedule()
