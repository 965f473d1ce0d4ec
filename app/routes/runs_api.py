"""REST for runs, thin over the same RunService the pages use, plus `GET /api/hardware`.

Requests and answers are pydantic models, so /openapi.json describes each of them; refusals
are ErrorBody and answers are written by pydantic (app.routes.api).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from app.routes.api import COMMON_ERRORS, ApiRoute, ModelJSONResponse, error_responses
from app.routes.deps import RunServiceDep
from app.services import hardware
from app.services.run_service import RunDetail, RunInfo
from tunerdeck_common.events import Event

router = APIRouter(
    prefix="/api",
    tags=["runs"],
    responses={**COMMON_ERRORS, **error_responses(404, 409, 502)},
    route_class=ApiRoute,
    default_response_class=ModelJSONResponse,
)


class StartRun(BaseModel):
    """A saved config by name, or field values (over the defaults); with both, the name only
    labels the run."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"config_name": "my-lora"}, {"config": {"max_train_steps": 10}}]
        },
    )

    config: dict[str, Any] | None = Field(
        None, description='field values, e.g. {"max_train_steps": 10}'
    )
    config_name: str | None = Field(None, description="the name of a saved config")


class Deleted(BaseModel):
    deleted: str


class Cancelled(BaseModel):
    cancelled: str


@router.get("/runs")
async def list_runs(service: RunServiceDep) -> list[RunInfo]:
    return await service.list_runs()


@router.post("/runs", status_code=201)
async def start_run(body: StartRun, service: RunServiceDep) -> RunInfo:
    return await service.start_run(config=body.config, config_name=body.config_name)


@router.get("/runs/{run_id}")
async def get_run(run_id: str, service: RunServiceDep) -> RunInfo:
    return await service.get_run(run_id)


@router.post("/runs/{run_id}/stop")
async def stop_run(run_id: str, service: RunServiceDep) -> RunInfo:
    return await service.stop_run(run_id)


@router.post("/runs/{run_id}/kill")
async def kill_run(run_id: str, service: RunServiceDep) -> RunInfo:
    """SIGKILL now, without waiting for the stop's checkpoint (a trainer stuck in stopping)."""
    return await service.kill_run(run_id)


@router.post("/runs/{run_id}/resume")
async def resume_run(run_id: str, service: RunServiceDep) -> RunInfo:
    return await service.resume_run(run_id)


@router.delete("/runs/{run_id}")
async def delete_run(run_id: str, service: RunServiceDep) -> Deleted:
    await service.delete_run(run_id)
    return Deleted(deleted=run_id)


@router.get("/runs/{run_id}/events")
async def run_events(
    run_id: str, service: RunServiceDep, after: Annotated[int, Query(ge=0)] = 0
) -> list[Event]:
    return await service.events_after(run_id, after)


@router.get("/queue")
async def get_queue(service: RunServiceDep) -> list[RunInfo]:
    return await service.queue()


@router.get("/runs/{run_id}/detail")
async def run_detail(
    run_id: str, service: RunServiceDep, include_progress: bool = True
) -> RunDetail:
    """What the monitor view draws (webui mode reads it from the trainer server)."""
    return await service.get_detail(run_id, include_progress)


@router.post("/queue/{run_id}/move")
async def move_in_queue(
    run_id: str, service: RunServiceDep, position: Annotated[int, Query(ge=0)]
) -> list[RunInfo]:
    return await service.move_in_queue(run_id, position)


@router.delete("/queue/{run_id}")
async def cancel_queued(run_id: str, service: RunServiceDep) -> Cancelled:
    await service.cancel_queued(run_id)
    return Cancelled(cancelled=run_id)


@router.get("/hardware")
async def get_hardware() -> hardware.HardwareSnapshot:
    # nvml calls block briefly: keep them off the event loop.
    return await run_in_threadpool(hardware.snapshot)


@router.get(
    "/runs/{run_id}/file",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}},
)
async def run_file(run_id: str, path: str, service: RunServiceDep) -> Any:
    """A file of the run's folder (validation images), never anything outside it; in webui
    mode it comes from the trainer server, streamed through."""
    found = await service.open_file(run_id, path)
    if found.path is not None:
        return FileResponse(found.path)
    assert found.chunks is not None
    headers = {"Content-Length": str(found.size)} if found.size is not None else None
    return StreamingResponse(
        found.chunks, media_type=found.media_type or "application/octet-stream", headers=headers
    )
