"""Server-sent event streams of run events (sse-starlette).

- `GET /api/runs/{id}/stream`: one run; each event's SSE `id` is its seq.
- `GET /api/events/stream`: every run; ids are `run_id:seq`.

Resuming (`Last-Event-ID` header, or `?after=` for clients that cannot set headers): the
stream subscribes to the bus *before* reading the catch-up from the run service, so nothing
published in between is lost, and a per-run tracker of sent seqs drops anything the catch-up
already delivered. A client that reads too slowly is cut off by the bus (bounded queue); the
stream then sends a `cutoff` event with the reason, and the client reconnects with its last id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.services.container import get_services
from app.services.event_bus import EventBus, Subscription, _SeqTracker
from app.services.events import Event
from app.services.run_service import RunError, RunService

router = APIRouter(prefix="/api", tags=["streams"])

PING_S: float = 15.0  # heartbeat comment interval: keeps proxies from closing idle streams
SEND_TIMEOUT_S: float = 60.0  # a client whose socket accepts nothing for this long is dropped


def _sources() -> tuple[RunService, EventBus]:
    services = get_services()
    if services.run_service is None or services.event_bus is None:
        raise RunError("This server has no run service.", 503)
    return services.run_service, services.event_bus


def _error(exc: RunError) -> JSONResponse:
    return JSONResponse(exc.payload(), status_code=exc.status)


def _message(event: Event, event_id: str) -> ServerSentEvent:
    return ServerSentEvent(data=event.model_dump_json(), id=event_id)


def _cutoff(reason: str) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps({"reason": reason}), event="cutoff")


def _response(content: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
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


async def _live(
    sub: Subscription, sent: _Sent, ident: Any, *, request: Request
) -> AsyncIterator[ServerSentEvent]:
    async for event in sub:
        if sent.first_time(event):
            yield _message(event, ident(event))
    if sub.reason is not None and not await request.is_disconnected():
        yield _cutoff(sub.reason)


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


@router.get("/runs/{run_id}/stream", response_model=None)
async def run_stream(request: Request, run_id: str, after: int | None = None) -> Any:
    """Events of one run after `Last-Event-ID` (or `?after=`), then live ones as they come."""
    try:
        service, bus = _sources()
        await service.get_run(run_id)  # 404 before the stream starts
    except RunError as exc:
        return _error(exc)
    header = parse_run_cursor(request.headers.get("last-event-id"))
    start = header if header is not None else max(after or 0, 0)

    async def content() -> AsyncIterator[ServerSentEvent]:
        sub = bus.subscribe(run_id)  # before the catch-up: no gap
        sent = _Sent()
        sent.start(run_id, start)
        try:
            for event in await service.events_after(run_id, start):
                if sent.first_time(event):
                    yield _message(event, str(event.seq))
            async for message in _live(sub, sent, lambda e: str(e.seq), request=request):
                yield message
        finally:
            sub.close()

    return _response(content())


async def _all_catch_up(service: RunService, cursor: tuple[str, int]) -> list[Event]:
    """Every run's events after the cursor: the cursor's run after its seq, the other runs
    after the cursor event's timestamp; sorted as the stream would have sent them."""
    run_id, seq = cursor
    try:
        with_anchor = await service.events_after(run_id, max(seq - 1, 0))
    except RunError:  # that run was deleted since: resume from the other runs alone
        with_anchor = []
    anchor = next((e for e in with_anchor if e.seq == seq), None)
    anchor_ts = anchor.ts if anchor is not None else None
    events: list[Event] = [e for e in with_anchor if e.seq > seq]
    for run in await service.list_runs():
        if run.id == run_id:
            continue
        for event in await service.events_after(run.id, 0):
            if anchor_ts is None or event.ts > anchor_ts:
                events.append(event)
    events.sort(key=lambda e: (e.ts, e.run_id, e.seq))
    return events


@router.get("/events/stream", response_model=None)
async def all_events_stream(request: Request, after: str | None = None) -> Any:
    """Events of every run, live; with `Last-Event-ID: run_id:seq` (or `?after=`) first
    everything after that event. Without a cursor only new events are sent."""
    try:
        service, bus = _sources()
    except RunError as exc:
        return _error(exc)
    cursor = parse_all_cursor(request.headers.get("last-event-id")) or parse_all_cursor(after)

    def ident(event: Event) -> str:
        return f"{event.run_id}:{event.seq}"

    async def content() -> AsyncIterator[ServerSentEvent]:
        sub = bus.subscribe(None)
        sent = _Sent()
        try:
            if cursor is not None:
                sent.start(*cursor)
                for event in await _all_catch_up(service, cursor):
                    if sent.first_time(event):
                        yield _message(event, ident(event))
            async for message in _live(sub, sent, ident, request=request):
                yield message
        finally:
            sub.close()

    return _response(content())
