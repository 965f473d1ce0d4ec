"""`POST /callbacks`: trainers deliver event batches here, with their run's bearer token.

Body: {"run_id": ID, "events": [...]} (or a bare list of events). Each event is checked on its
own: malformed ones are refused (422, listed with the reason, logged); the valid rest is kept.
An unknown run and a wrong token get the same 401, so the route tells nobody which run ids exist.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.services.container import get_services
from app.services.events import EventError, parse_event

log = logging.getLogger(__name__)
router = APIRouter(tags=["callbacks"])

MAX_BATCH = 5000


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


@router.post("/callbacks")
async def callbacks(request: Request) -> JSONResponse:
    service = get_services().run_service
    if service is None:
        return _error(503, "This server supervises no runs.")
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        return _error(400, 'The body must be JSON: {"run_id": ID, "events": [...]}.')
    events = body.get("events") if isinstance(body, dict) else body
    if not isinstance(events, list):
        return _error(400, 'The body must be {"run_id": ID, "events": [...]} or a list of events.')
    if len(events) > MAX_BATCH:
        return _error(413, f"At most {MAX_BATCH} events per request; send smaller batches.")
    run_id = body.get("run_id") if isinstance(body, dict) else None
    if run_id is None and events and isinstance(events[0], dict):
        run_id = events[0].get("run_id")
    known = isinstance(run_id, str) and service.known(run_id)
    token = request.headers.get("authorization", "")
    expected = (service.token_of(run_id) if known else None) or ""
    # Compared even for an unknown run, so the answer's timing says nothing either.
    token_ok = secrets.compare_digest(
        token[7:].encode() if token.startswith("Bearer ") else b"", (expected or "-").encode()
    )
    if not (known and expected and token_ok):
        log.warning("callback for run %r refused: unknown run or wrong or missing token", run_id)
        return _error(
            401,
            "Unknown run, or a missing or wrong bearer token for it: this server did not "
            "start that run with that token.",
        )

    accepted = duplicates = 0
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(events):
        try:
            event = parse_event(raw)
            if event.run_id != run_id:
                raise EventError(f"run_id {event.run_id!r} differs from the batch's run {run_id!r}")
        except EventError as exc:
            seq = raw.get("seq") if isinstance(raw, dict) else None
            rejected.append({"index": index, "seq": seq, "error": str(exc)})
            log.warning("run %s: malformed event #%s refused: %s", run_id, index, exc)
            continue
        if service.ingest(event):
            accepted += 1
        else:
            duplicates += 1
    payload = {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
    if rejected:
        payload["error"] = (
            f"{len(rejected)} malformed event(s) refused; the other events were kept."
        )
        return JSONResponse(payload, status_code=422)
    return JSONResponse(payload)
