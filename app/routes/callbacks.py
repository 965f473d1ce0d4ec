"""`POST /callbacks`: trainers deliver event batches here, with their run's bearer token.

Body: {"run_id": ID, "events": [...]} (or a bare list of events). Each event is checked on its
own: malformed ones are refused (422, listed with the reason, logged); the valid rest is kept.
An unknown run and a wrong token get the same 401, so the route tells nobody which run ids exist.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response
from pydantic import BaseModel, Field

from app.routes.api import ApiRoute, ModelJSONResponse, error_responses
from app.routes.deps import EventSinkDep
from app.services.run_service import RunError, RunEventSink
from tunerdeck_common.events import EventError, parse_event

log = logging.getLogger(__name__)

MAX_BATCH = 5000


class CallbackBatch(BaseModel):
    run_id: str | None = None
    events: list[Any] = Field(description="events of that run (each checked on its own)")


class RejectedEvent(BaseModel):
    index: int
    seq: Any = None
    error: str


class CallbackResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedEvent] = []
    error: str | None = Field(None, description="set when some events were refused (422)")


router = APIRouter(
    tags=["callbacks"],
    responses={
        **error_responses(400, 401, 403, 413, 415, 503),
        422: {"model": CallbackResult, "description": "some events were refused, the rest kept"},
    },
    route_class=ApiRoute,
    default_response_class=ModelJSONResponse,
)

REFUSED = (
    "Unknown run, or a missing or wrong bearer token for it: this server did not "
    "start that run with that token."
)


def _token_ok(sink: RunEventSink, run_id: Any, authorization: str) -> bool:
    known = isinstance(run_id, str) and sink.known(run_id)
    expected = (sink.token_of(run_id) if known else None) or ""
    # Compared even for an unknown run, so the answer's timing says nothing either.
    matches = secrets.compare_digest(
        authorization[7:].encode() if authorization.startswith("Bearer ") else b"",
        (expected or "-").encode(),
    )
    return bool(known and expected and matches)


@router.post("/callbacks")
async def callbacks(
    body: Annotated[CallbackBatch | list[Any], Body()],
    sink: EventSinkDep,
    response: Response,
    authorization: Annotated[str, Header()] = "",
) -> CallbackResult:
    events = body.events if isinstance(body, CallbackBatch) else body
    if len(events) > MAX_BATCH:
        raise RunError(f"At most {MAX_BATCH} events per request; send smaller batches.", 413)
    run_id = body.run_id if isinstance(body, CallbackBatch) else None
    if run_id is None and events and isinstance(events[0], dict):
        run_id = events[0].get("run_id")
    if not _token_ok(sink, run_id, authorization):
        log.warning("callback for run %r refused: unknown run or wrong or missing token", run_id)
        raise RunError(REFUSED, 401)

    result = CallbackResult(accepted=0, duplicates=0)
    for index, raw in enumerate(events):
        try:
            event = parse_event(raw)
            if event.run_id != run_id:
                raise EventError(f"run_id {event.run_id!r} differs from the batch's run {run_id!r}")
        except EventError as exc:
            seq = raw.get("seq") if isinstance(raw, dict) else None
            result.rejected.append(RejectedEvent(index=index, seq=seq, error=str(exc)))
            log.warning("run %s: malformed event #%s refused: %s", run_id, index, exc)
            continue
        if sink.ingest(event):
            result.accepted += 1
        else:
            result.duplicates += 1
    if result.rejected:
        result.error = (
            f"{len(result.rejected)} malformed event(s) refused; the other events were kept."
        )
        response.status_code = 422
    return result
