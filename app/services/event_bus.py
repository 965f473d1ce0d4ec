"""In-process fan-out of run events: dedupe by (run_id, seq), a bounded tail per run, async
subscriptions (SSE, tests) and synchronous listeners (NiceGUI views, which coalesce).

Events can arrive twice (callback + events.jsonl follower) and out of order (a gap filled from
the file later): each seq is delivered once, whenever it first arrives, and the missing seqs
are tracked so the run service can fill them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tunerdeck_common.events import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogLine:
    """One line of a trainer's stdout/stderr (trainer.log): not an event, has no seq."""

    run_id: str
    text: str
    ts: float = field(default_factory=time.time)


Item = Event | LogLine
Listener = Callable[[Item], None]


@dataclass
class _SeqTracker:
    """Which seqs of one run were seen: everything up to `contiguous`, plus `above`."""

    contiguous: int = 0
    above: set[int] = field(default_factory=set)

    def seen(self, seq: int) -> bool:
        return seq <= self.contiguous or seq in self.above

    def add(self, seq: int) -> None:
        self.above.add(seq)
        while self.contiguous + 1 in self.above:
            self.contiguous += 1
            self.above.discard(self.contiguous)

    @property
    def highest(self) -> int:
        return max(self.above, default=self.contiguous)

    def missing(self) -> list[int]:
        return [s for s in range(self.contiguous + 1, self.highest) if s not in self.above]


class Subscription:
    """Async iterator of events; cut off (with `reason`) when it falls `maxsize` behind."""

    def __init__(self, bus: EventBus, run_id: str | None, maxsize: int) -> None:
        self.bus = bus
        self.run_id = run_id
        self.maxsize = maxsize
        # One slot more than the limit, kept for the end-of-stream marker.
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize + 1)
        self.reason: str | None = None

    def _offer(self, event: Event) -> None:
        if self.reason is not None:
            return
        if self.queue.qsize() < self.maxsize:
            self.queue.put_nowait(event)
            return
        self.reason = (
            f"subscriber fell more than {self.maxsize} events behind; reconnect with after=SEQ"
        )
        self.bus._subscriptions.discard(self)
        self.queue.put_nowait(None)

    def close(self, reason: str = "closed") -> None:
        if self.reason is None:
            self.reason = reason
            self.bus._subscriptions.discard(self)
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)

    def take_nowait(self) -> Event | None:
        """The next queued event without waiting; None when none is queued yet, or at the end
        (the end marker stays queued, so iteration still stops there)."""
        try:
            event = self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if event is None:
            self.queue.put_nowait(None)  # nothing is queued after the end marker: room for it
        return event

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self.reason is not None and self.queue.empty():
            raise StopAsyncIteration
        event = await self.queue.get()
        if event is None:
            raise StopAsyncIteration
        return event


class EventBus:
    def __init__(
        self, tail_size: int = 2000, queue_size: int = 10_000, lines_size: int = 1000
    ) -> None:
        self.tail_size = tail_size
        self.queue_size = queue_size
        self._tails: dict[str, collections.deque[Event]] = {}
        self._lines: dict[str, collections.deque[LogLine]] = {}
        self._seqs: dict[str, _SeqTracker] = {}
        self._subscriptions: set[Subscription] = set()
        self._listeners: list[Listener] = []
        self._lines_size = lines_size
        self.published = 0

    # ---- publishing -----------------------------------------------------------------------
    def publish(self, event: Event) -> bool:
        """Deliver `event` unless its (run_id, seq) was seen; True when it was new."""
        tracker = self._seqs.setdefault(event.run_id, _SeqTracker())
        if tracker.seen(event.seq):
            return False
        tracker.add(event.seq)
        tail = self._tails.setdefault(event.run_id, collections.deque(maxlen=self.tail_size))
        tail.append(event)
        self.published += 1
        for sub in list(self._subscriptions):
            if sub.run_id is None or sub.run_id == event.run_id:
                sub._offer(event)
        self._notify(event)
        return True

    def publish_line(self, line: LogLine) -> None:
        lines = self._lines.setdefault(line.run_id, collections.deque(maxlen=self._lines_size))
        lines.append(line)
        self._notify(line)

    def _notify(self, item: Item) -> None:
        for listener in list(self._listeners):
            try:
                listener(item)
            except Exception:  # one broken page must not stop the others
                log.exception("event listener failed")

    def seen(self, run_id: str, seq: int) -> bool:
        tracker = self._seqs.get(run_id)
        return tracker is not None and tracker.seen(seq)

    def mark_seen(self, run_id: str, up_to: int) -> None:
        """Seqs 1..up_to are already in the record (e.g. replayed before a restart)."""
        tracker = self._seqs.setdefault(run_id, _SeqTracker())
        tracker.contiguous = max(tracker.contiguous, up_to)
        tracker.above = {s for s in tracker.above if s > tracker.contiguous}

    # ---- reading --------------------------------------------------------------------------
    def tail(self, run_id: str) -> list[Event]:
        return list(self._tails.get(run_id, ()))

    def lines(self, run_id: str) -> list[LogLine]:
        return list(self._lines.get(run_id, ()))

    def last_seq(self, run_id: str) -> int:
        tracker = self._seqs.get(run_id)
        return tracker.highest if tracker else 0

    def missing(self, run_id: str) -> list[int]:
        tracker = self._seqs.get(run_id)
        return tracker.missing() if tracker else []

    def subscribe(
        self, run_id: str | None = None, after: int | None = None, maxsize: int | None = None
    ) -> Subscription:
        """Events from now on; with `after`, first the tail's events with seq > after.
        `maxsize` (default: the bus's queue_size) is how far behind it may fall."""
        sub = Subscription(self, run_id, min(maxsize or self.queue_size, self.queue_size))
        if after is not None:
            runs = [run_id] if run_id is not None else list(self._tails)
            for rid in runs:
                for event in self._tails.get(rid, ()):
                    if event.seq > after:
                        sub._offer(event)
        self._subscriptions.add(sub)
        return sub

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The open subscriptions (one per live stream), with their state (`reason` once cut
        off): what a server's status or a diagnosis of slow clients reports."""
        return tuple(self._subscriptions)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` synchronously with every new item; returns the remover."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def release(self, run_id: str) -> None:
        """A finished run: drop its in-memory tail (events.jsonl has them), keep seq tracking."""
        self._tails.pop(run_id, None)
        self._lines.pop(run_id, None)

    def forget(self, run_id: str) -> None:
        self._tails.pop(run_id, None)
        self._lines.pop(run_id, None)
        self._seqs.pop(run_id, None)
        for sub in list(self._subscriptions):
            if sub.run_id == run_id:
                sub.close("run deleted")
