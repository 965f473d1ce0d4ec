"""REST for runs, thin over the same RunService the pages use, plus `GET /api/hardware`.

Errors are JSON: {"error": what to do, "errors": [details]}. Answers are serialised by
pydantic (`_json`), which writes any whole number a record holds: the app's default JSON
encoder refuses integers past 64 bits, and one such value must not break a listing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel

from app.services import hardware
from app.services.container import get_services
from app.services.events import Event
from app.services.run_service import RunDetail, RunError, RunInfo, RunService


class ErrorBody(BaseModel):
    error: str
    errors: list[str] = []


# Every route may refuse with one of these; the schema says so (and what the body is).
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415, 422, 500, 502, 503)
}
router = APIRouter(prefix="/api", tags=["runs"], responses=_ERRORS)


def _json(data: BaseModel | Sequence[BaseModel], status_code: int = 200) -> Response:
    if isinstance(data, BaseModel):
        body = data.model_dump_json()
    else:
        body = "[" + ",".join(item.model_dump_json() for item in data) + "]"
    return Response(body, status_code=status_code, media_type="application/json")


def _service() -> RunService:
    service = get_services().run_service
    if service is None:
        raise RunError("This server has no run service.", 503)
    return service


@router.get("/runs", response_model=list[RunInfo])
async def list_runs() -> Any:
    return _json(await _service().list_runs())


@router.post("/runs", status_code=201, response_model=RunInfo)
async def start_run(request: Request) -> Any:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise RunError(
            'The body must be JSON: {"config_name": NAME} or {"config": {...}}.'
        ) from None
    if not isinstance(body, dict):
        raise RunError(
            'The body must be a JSON object: {"config_name": NAME} or {"config": {...}}.'
        )
    unknown = sorted(set(body) - {"config", "config_name"})
    if unknown:
        raise RunError(f"Unknown key(s) {', '.join(unknown)}: send only config_name and/or config.")
    name = body.get("config_name")
    if name is not None and not isinstance(name, str):
        raise RunError('"config_name" must be the name of a saved config (a string).')
    run = await _service().start_run(config=body.get("config"), config_name=name)
    return _json(run, status_code=201)


@router.get("/runs/{run_id}", response_model=RunInfo)
async def get_run(run_id: str) -> Any:
    return _json(await _service().get_run(run_id))


@router.post("/runs/{run_id}/stop", response_model=RunInfo)
async def stop_run(run_id: str) -> Any:
    return _json(await _service().stop_run(run_id))


@router.post("/runs/{run_id}/kill", response_model=RunInfo)
async def kill_run(run_id: str) -> Any:
    """SIGKILL now, without waiting for the stop's checkpoint (a trainer stuck in stopping)."""
    return _json(await _service().kill_run(run_id))


@router.post("/runs/{run_id}/resume", response_model=RunInfo)
async def resume_run(run_id: str) -> Any:
    return _json(await _service().resume_run(run_id))


@router.delete("/runs/{run_id}")
async def delete_run(run_id: str) -> Any:
    await _service().delete_run(run_id)
    return {"deleted": run_id}


@router.get("/runs/{run_id}/events", response_model=list[Event])
async def run_events(run_id: str, after: int = Query(0, ge=0)) -> Any:
    return _json(await _service().events_after(run_id, after))


@router.get("/queue", response_model=list[RunInfo])
async def get_queue() -> Any:
    return _json(await _service().queue())


@router.get("/runs/{run_id}/detail", response_model=RunDetail)
async def run_detail(run_id: str, include_progress: bool = True) -> Any:
    """What the monitor view draws (webui mode reads it from the trainer server)."""
    return _json(await _service().get_detail(run_id, include_progress))


@router.post("/queue/{run_id}/move", response_model=list[RunInfo])
async def move_in_queue(run_id: str, position: int = Query(..., ge=0)) -> Any:
    return _json(await _service().move_in_queue(run_id, position))


@router.delete("/queue/{run_id}")
async def cancel_queued(run_id: str) -> Any:
    await _service().cancel_queued(run_id)
    return {"cancelled": run_id}


@router.get("/hardware")
async def get_hardware() -> Any:
    # nvml calls block briefly: keep them off the event loop.
    return (await run_in_threadpool(hardware.snapshot)).model_dump()


@router.get("/runs/{run_id}/file")
async def run_file(run_id: str, path: str) -> Any:
    """A file of the run's folder (validation images), never anything outside it; in webui
    mode it comes from the trainer server, streamed through."""
    found = await _service().open_file(run_id, path)
    if found.path is not None:
        return FileResponse(found.path)
    assert found.chunks is not None
    headers = {"Content-Length": str(found.size)} if found.size is not None else None
    return StreamingResponse(
        found.chunks, media_type=found.media_type or "application/octet-stream", headers=headers
    )
