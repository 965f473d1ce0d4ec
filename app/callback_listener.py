"""`--callback-port N`: a second listener that accepts only `POST /callbacks`, so remote
trainers can report in while the UI itself stays on loopback (unified mode)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import uvicorn
from fastapi import FastAPI

from app.routes.callbacks import router as callbacks_router
from app.security import (
    BodyLimitMiddleware,
    CrossSiteMiddleware,
    FrameGuardMiddleware,
    _internal_error,
)
from app.services.container import Services


def callbacks_only_app(services: Services) -> FastAPI:
    app = FastAPI(title="tunerdeck callbacks", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.include_router(callbacks_router)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(CrossSiteMiddleware)  # the same rules as the main port
    app.add_middleware(FrameGuardMiddleware)
    return app


class _SecondServer(uvicorn.Server):
    """Leaves signal handling to the main server, which stops this one at shut-down."""

    def capture_signals(self) -> Any:
        return contextlib.nullcontext()


def start_callback_listener(host: str, port: int, services: Services) -> uvicorn.Server:
    """Serve the callbacks-only app on the running loop (the main server's); set
    `should_exit` on the returned server to stop it."""
    config = uvicorn.Config(callbacks_only_app(services), host=host, port=port, log_level="warning")
    server = _SecondServer(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    server.task = task  # type: ignore[attr-defined]  # keep a reference: tasks are weakly held
    return server
