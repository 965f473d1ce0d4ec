"""HTTP routers. Each module named in ROUTERS exposes `router = APIRouter(...)`;
app.server (and app.trainer_server) install them all. Other parts append their module names."""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.services.run_service import RunError

ROUTERS: list[str] = ["callbacks", "runs_api", "datasets_api", "sse"]


def load_routers() -> list[Any]:
    """Every router of ROUTERS (imported here so trainer mode needs no NiceGUI)."""
    return [importlib.import_module(f"app.routes.{name}").router for name in ROUTERS]


async def run_error_response(_: Request, exc: Exception) -> JSONResponse:
    """A refused request (RunError): its status and a message a person can act on."""
    assert isinstance(exc, RunError)
    return JSONResponse(exc.payload(), status_code=exc.status)


def install_routes(app: FastAPI) -> None:
    """Every router, and one answer for a RunError raised by any route."""
    for router in load_routers():
        app.include_router(router)
    app.add_exception_handler(RunError, run_error_response)
