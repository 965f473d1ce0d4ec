"""Server-sent event streams of run events (sse-starlette).

- `GET /api/runs/{id}/stream`: one run; each event's SSE `id` is its seq.
- `GET /api/events/stream`: every run; ids are `run_id:seq`.

Resuming (`Last-Event-ID` header, or `?after=` for clients that cannot set headers): the
stream subscribes to the bus *before* reading the catch-up from the run service, so nothing
published in between is lost, and a per-run tracker of sent seqs drops anything the catch-up
already delivered. A client that reads too slowly is cut off by the bus (bounded queue); the
stream then sends a `cutoff` event with the reason, and the client reconnects with its last id.

With `?logs=true` the all-runs stream also carries the trainers' output lines as `log` events
({"run_id", "text", "ts"}) with no SSE id, so `Last-Event-ID` stays an event cursor. Lines
are live only: the ones missed while away are in the runs' detail (`log_tail`, `logs`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import math
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.routes.api import COMMON_ERRORS, ApiRoute, error_responses
from app.routes.deps import EventBusDep, RunServiceDep
from app.services.event_bus import EventBus, LogLine, Subscription, _SeqTracker
from app.services.run_service import RunError, RunService
from tunerdeck_common.events import Event

router = APIRouter(
    prefix="/api",
    tags=["streams"],
    responses={**COMMON_ERRORS, **error_responses(404)},
    route_class=ApiRoute,
)
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}
}

PING_S: float = 15.0  # heartbeat comment interval: keeps proxies from closing idle streams
SEND_TIMEOUT_S: float = 60.0  # a client whose socket accepts nothing for this long is dropped
ORDER_WINDOW: int = 100_000  # published events whose order is kept for exact resumes
LINES_QUEUE: int = 2000  # output lines a stream may hold unsent before it is cut off
# Events a stream may hold unsent before it is cut off (it reconnects with Last-Event-ID and
# catches up from events.jsonl): a client that stops reading holds at most this many until
# the send timeout drops it, instead of the bus's whole queue.
EVENTS_QUEUE: int = 1000
# What is already queued when a stream wakes goes out in one write, up to this many events: a
# write per event (through the middleware and the send timeout) capped a stream at a few
# thousand events a second. A stream that stops reading holds at most this many more.
BATCH: int = 100


def _message(event: Event, event_id: str) -> ServerSentEvent:
    return ServerSentEvent(data=event.model_dump_json(), id=event_id)


def _cutoff(reason: str) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps({"reason": reason}), event="cutoff")


def _response(content: AsyncIterator[bytes]) -> EventSourceResponse:
    return EventSourceResponse(
        content,
        ping=PING_S,
        send_timeout=SEND_TIMEOUT_S,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


class _Sent:
    """Per-run record of the seqs this stream already sent: nothing goes out twice."""

    def __init__(self) -> None:
        self._runs: dict[str, _SeqTracker] = {}

    def first_time(self, event: Event, after: int = 0) -> bool:
        tracker = self._runs.setdefault(event.run_id, _SeqTracker(contiguous=after))
        if tracker.seen(event.seq):
            return False
        tracker.add(event.seq)
        return True

    def start(self, run_id: str, after: int) -> None:
        self._runs[run_id] = _SeqTracker(contiguous=after)


def _line(line: LogLine) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps({"run_id": line.run_id, "text": line.text, "ts": line.ts}), event="log"
    )


class _Lines:
    """The bus's output lines for one stream, in a bounded queue: a stream that falls too far
    behind is cut off (its subscription closed with the reason), as for events."""

    def __init__(self, bus: EventBus, sub: Subscription) -> None:
        self.queue: asyncio.Queue[LogLine] = asyncio.Queue(LINES_QUEUE)
        self._sub = sub
        self.close = bus.listen(self._offer)

    def _offer(self, item: object) -> None:
        if not isinstance(item, LogLine):
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.close()
            self._sub.close(
                f"subscriber fell more than {LINES_QUEUE} output lines behind; reconnect"
            )


async def _next(sub: Subscription) -> Event | None:
    return await anext(sub, None)


def _take_ready(sub: Subscription, batch: list[Event | LogLine]) -> None:
    """Add the events already queued, in order, up to BATCH in all (never waits)."""
    while len(batch) < BATCH and (event := sub.take_nowait()) is not None:
        batch.append(event)


async def _event_batches(sub: Subscription) -> AsyncGenerator[list[Event | LogLine], None]:
    """Events as they come: each wake-up's worth (what is queued by then) at once."""
    async for event in sub:
        batch: list[Event | LogLine] = [event]
        _take_ready(sub, batch)
        yield batch


async def _merged(sub: Subscription, lines: _Lines) -> AsyncGenerator[list[Event | LogLine], None]:
    """Events and output lines as they come, each wake-up's worth at once, until the
    subscription ends."""
    next_event = asyncio.ensure_future(_next(sub))
    next_line = asyncio.ensure_future(lines.queue.get())
    try:
        while True:
            done, _ = await asyncio.wait(
                {next_event, next_line}, return_when=asyncio.FIRST_COMPLETED
            )
            batch: list[Event | LogLine] = []
            if next_line in done:
                batch.append(next_line.result())
                while len(batch) < BATCH and not lines.queue.empty():
                    batch.append(lines.queue.get_nowait())
                next_line = asyncio.ensure_future(lines.queue.get())
            ended = False
            if next_event in done:
                event = next_event.result()
                if event is None:
                    ended = True
                else:  # the task took the oldest event: the rest follow it in order
                    batch.append(event)
                    _take_ready(sub, batch)
                    next_event = asyncio.ensure_future(_next(sub))
            if batch:
                yield batch
            if ended:
                return
    finally:
        for task in (next_event, next_line):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _live(
    sub: Subscription, sent: _Sent, ident: Any, *, request: Request, lines: _Lines | None = None
) -> AsyncIterator[bytes]:
    batches = _merged(sub, lines) if lines is not None else _event_batches(sub)
    try:
        async for batch in batches:
            chunk = [
                _line(item).encode()
                if isinstance(item, LogLine)
                else _message(item, ident(item)).encode()
                for item in batch
                if isinstance(item, LogLine) or sent.first_time(item)
            ]
            if chunk:
                yield b"".join(chunk)
    finally:  # cancel its pending reads now, not at garbage collection
        await batches.aclose()
    if sub.reason is not None and not await request.is_disconnected():
        yield _cutoff(sub.reason).encode()


async def _joined(messages: list[ServerSentEvent]) -> AsyncIterator[bytes]:
    """Catch-up messages, BATCH to a write."""
    for start in range(0, len(messages), BATCH):
        yield b"".join(m.encode() for m in messages[start : start + BATCH])


def parse_run_cursor(text: str | None) -> int | None:
    """`Last-Event-ID` / `after` of a one-run stream: a seq (int >= 0), or None if absent/bad."""
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip())


def parse_all_cursor(text: str | None) -> tuple[str, int] | None:
    """`run_id:seq` of the all-runs stream, or None if absent or malformed."""
    if not text or ":" not in text:
        return None
    run_id, _, seq = text.strip().rpartition(":")
    if not run_id or not seq.isdigit():
        return None
    return run_id, int(seq)


@router.get(
    "/runs/{run_id}/stream",
    response_model=None,
    response_class=EventSourceResponse,
    responses=_STREAM,
)
async def run_stream(
    request: Request,
    run_id: str,
    service: RunServiceDep,
    bus: EventBusDep,
    after: int | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Any:
    """Events of one run after `Last-Event-ID` (or `?after=`), then live ones as they come."""
    await service.get_run(run_id)  # 404 before the stream starts
    header = parse_run_cursor(last_event_id)
    start = header if header is not None else max(after or 0, 0)

    async def content() -> AsyncIterator[bytes]:
        sub = bus.subscribe(run_id, maxsize=EVENTS_QUEUE)  # before the catch-up: no gap
        sent = _Sent()
        sent.start(run_id, start)
        try:
            missed = await service.events_after(run_id, start)
            caught_up = [_message(e, str(e.seq)) for e in missed if sent.first_time(e)]
            async for data in _joined(caught_up):
                yield data
            async for data in _live(sub, sent, lambda e: str(e.seq), request=request):
                yield data
        finally:
            sub.close()

    return _response(content())


class _PublishOrder:
    """The order in which this server published the last ORDER_WINDOW events (all runs):
    what makes an all-runs resume exact, since timestamps need not follow delivery order (a
    late callback batch, a gap filled from events.jsonl)."""

    def __init__(self, bus: EventBus) -> None:
        self._positions: dict[tuple[str, int], int] = {}
        self._recent: collections.deque[tuple[str, int, int]] = collections.deque()
        self._latest: dict[str, int] = {}  # run id -> position of its newest published event
        self._count = 0
        bus.listen(self._saw)

    def _saw(self, item: object) -> None:
        if not isinstance(item, Event):
            return
        self._count += 1
        self._positions[(item.run_id, item.seq)] = self._count
        self._latest[item.run_id] = self._count
        self._recent.append((item.run_id, item.seq, self._count))
        if len(self._recent) > ORDER_WINDOW:
            run_id, seq, position = self._recent.popleft()
            if self._positions.get((run_id, seq)) == position:
                del self._positions[(run_id, seq)]

    def position(self, run_id: str, seq: int) -> int | None:
        return self._positions.get((run_id, seq))

    def published_since(self, run_id: str, position: int) -> bool:
        """Did `run_id` publish anything after `position`? (If not, a resume skips its file.)"""
        return self._latest.get(run_id, 0) > position


_orders: weakref.WeakKeyDictionary[EventBus, _PublishOrder] = weakref.WeakKeyDictionary()


def publish_order(bus: EventBus) -> _PublishOrder:
    """The bus's publish order, recorded from the first all-runs stream on: every event a
    client can hold as its last id was published after that."""
    order = _orders.get(bus)
    if order is None:
        order = _orders[bus] = _PublishOrder(bus)
    return order


async def _every_event(
    service: RunService, keep: Callable[[str], bool] = lambda _: True
) -> AsyncIterator[Event]:
    for run in await service.list_runs():
        if not keep(run.id):
            continue
        try:
            events = await service.events_after(run.id, 0)
        except RunError:  # deleted meanwhile
            continue
        for event in events:
            yield event


async def _all_catch_up(
    service: RunService, bus: EventBus, cursor: tuple[str, int]
) -> tuple[list[Event], bool]:
    """Every run's events after the cursor event, sorted as the stream would have sent them,
    and whether that is exact.

    Exact when that event is in the publish order: everything published after it, then what
    the record has and the bus has not published yet. Otherwise (an event from before this
    server started, or too old) by time: the cursor's run after its seq, the other runs
    after the cursor event's timestamp."""
    run_id, seq = cursor
    order = publish_order(bus)
    anchor_position = order.position(run_id, seq)
    if anchor_position is not None:
        later: list[tuple[float, Event]] = []
        # Only runs that published after the anchor have anything to send: the rest (most of
        # the history) are not read at all. What sits only on file arrives live once published.
        active = functools.partial(order.published_since, position=anchor_position)
        async for event in _every_event(service, active):
            position = order.position(event.run_id, event.seq)
            if position is not None and position > anchor_position:
                later.append((position, event))
            elif position is None and not bus.seen(event.run_id, event.seq):
                later.append((math.inf, event))  # only on record yet: it is published last
        later.sort(key=lambda p: (p[0], p[1].ts, p[1].run_id, p[1].seq))
        return [event for _, event in later], True
    try:
        with_anchor = await service.events_after(run_id, max(seq - 1, 0))
    except RunError:  # that run was deleted since: resume from the other runs alone
        with_anchor = []
    anchor = next((e for e in with_anchor if e.seq == seq), None)
    anchor_ts = anchor.ts if anchor is not None else None
    events: list[Event] = [e for e in with_anchor if e.seq > seq]
    async for event in _every_event(service):
        if event.run_id != run_id and (anchor_ts is None or event.ts > anchor_ts):
            events.append(event)
    events.sort(key=lambda e: (e.ts, e.run_id, e.seq))
    return events, False


@router.get(
    "/events/stream", response_model=None, response_class=EventSourceResponse, responses=_STREAM
)
async def all_events_stream(
    request: Request,
    service: RunServiceDep,
    bus: EventBusDep,
    after: str | None = None,
    logs: bool = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Any:
    """Events of every run, live; with `Last-Event-ID: run_id:seq` (or `?after=`) first
    everything after that event. Without a cursor only new events are sent. `logs=true`
    adds the trainers' output lines (`log` events without an id)."""
    cursor = parse_all_cursor(last_event_id) or parse_all_cursor(after)

    def ident(event: Event) -> str:
        return f"{event.run_id}:{event.seq}"

    async def content() -> AsyncIterator[bytes]:
        publish_order(bus)  # from now on the events this client gets have a known order
        sub = bus.subscribe(None, maxsize=EVENTS_QUEUE)
        lines = _Lines(bus, sub) if logs else None
        sent = _Sent()
        try:
            if cursor is not None:
                events, exact = await _all_catch_up(service, bus, cursor)
                if not exact:  # by time: take the cursor's run as had up to its seq
                    sent.start(*cursor)
                caught_up = [_message(e, ident(e)) for e in events if sent.first_time(e)]
                async for data in _joined(caught_up):
                    yield data
            async for data in _live(sub, sent, ident, request=request, lines=lines):
                yield data
        finally:
            if lines is not None:
                lines.close()
            sub.close()

    return _response(content())
