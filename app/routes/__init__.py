"""HTTP routers: the runs REST API, `/callbacks`, the dataset images and the event streams.
app.server (NiceGUI) and app.trainer_server (FastAPI alone) install them all; no router
imports NiceGUI. The routes find the services on `app.state.services`."""

from __future__ import annotations

from fastapi import FastAPI

from app.routes import callbacks, datasets_api, runs_api, sse


def install_routes(app: FastAPI) -> None:
    for module in (callbacks, runs_api, datasets_api, sse):
        app.include_router(module.router)
