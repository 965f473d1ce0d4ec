"""REST for runs, thin over the same RunService the pages use, plus `GET /api/hardware`.

Errors are JSON: {"error": what to do, "errors": [details]}.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from app.services import hardware
from app.services.container import get_services
from app.services.run_service import RunError, RunService

router = APIRouter(prefix="/api", tags=["runs"])


def _service() -> RunService:
    service = get_services().run_service
    if service is None:
        raise RunError("This server has no run service.", 503)
    return service


@router.get("/runs")
async def list_runs() -> Any:
    return [r.model_dump() for r in await _service().list_runs()]


@router.post("/runs", status_code=201)
async def start_run(request: Request) -> Any:
    try:
        body = await request.json()
    except ValueError:
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
    return JSONResponse(run.model_dump(), status_code=201)


@router.get("/runs/{run_id}")
async def get_run(run_id: str) -> Any:
    return (await _service().get_run(run_id)).model_dump()


@router.post("/runs/{run_id}/stop")
async def stop_run(run_id: str) -> Any:
    return (await _service().stop_run(run_id)).model_dump()


@router.post("/runs/{run_id}/kill")
async def kill_run(run_id: str) -> Any:
    """SIGKILL now, without waiting for the stop's checkpoint (a trainer stuck in stopping)."""
    return (await _service().kill_run(run_id)).model_dump()


@router.post("/runs/{run_id}/resume")
async def resume_run(run_id: str) -> Any:
    return (await _service().resume_run(run_id)).model_dump()


@router.delete("/runs/{run_id}")
async def delete_run(run_id: str) -> Any:
    await _service().delete_run(run_id)
    return {"deleted": run_id}


@router.get("/runs/{run_id}/events")
async def run_events(run_id: str, after: int = Query(0, ge=0)) -> Any:
    return [e.model_dump() for e in await _service().events_after(run_id, after)]


@router.get("/queue")
async def get_queue() -> Any:
    return [r.model_dump() for r in await _service().queue()]


@router.get("/runs/{run_id}/detail")
async def run_detail(run_id: str, include_progress: bool = True) -> Any:
    """What the monitor view draws (webui mode reads it from the trainer server)."""
    return (await _service().get_detail(run_id, include_progress)).model_dump()


@router.post("/queue/{run_id}/move")
async def move_in_queue(run_id: str, position: int = Query(..., ge=0)) -> Any:
    return [r.model_dump() for r in await _service().move_in_queue(run_id, position)]


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
