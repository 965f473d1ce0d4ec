"""`python -m app --mode trainer`: the headless server a GPU box runs. FastAPI only, one
port: the runs REST API, `/callbacks` and the SSE streams. NiceGUI is never imported here
(a test checks `sys.modules`), so this module must not import app.server or app.pages.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel

from app.access import AccessPolicy, is_loopback, server_token
from app.routes import install_routes
from app.security import install_security
from app.server_args import callback_url, storage_secret, url_for
from app.services.container import Services, build_services


class ServerInfo(BaseModel):
    mode: Literal["trainer"]
    nicegui_loaded: bool


def build_trainer_app(
    services: Services, policy: AccessPolicy, *, loopback_bind: bool = False
) -> FastAPI:
    """The trainer-mode app over `services` (the routes find them on `app.state`)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runs = services.run_service
        if runs is not None:
            await runs.ensure_started()
        yield
        if runs is not None:
            await runs.shutdown()

    app = FastAPI(title="tunerdeck trainer server", version="1", lifespan=lifespan)
    app.state.services = services
    install_routes(app)

    @app.get("/api/server", tags=["server"])
    async def server_info() -> ServerInfo:
        """What kind of server this is (the web UI in webui mode checks it)."""
        return ServerInfo(mode="trainer", nicegui_loaded="nicegui" in sys.modules)

    install_security(app, policy, loopback_bind=loopback_bind)
    return app


def serve(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    # Listen before anything names the port: with --port 0 the OS picks a free one, and the
    # printed URL and the trainers' callback URL carry the port actually bound.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        sock = socket.create_server((args.host, args.port), family=family)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    token = server_token(args.host, args.token)
    services = build_services(callback_url=callback_url(args.host, port))
    app = build_trainer_app(
        services,
        AccessPolicy(token, storage_secret(args.storage_secret)),
        loopback_bind=is_loopback(args.host),
    )
    print(f"tunerdeck trainer server at {url_for(args.host, port)}", flush=True)
    if token is not None:
        print(f"token: {token}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_level="info"))
    server.run(sockets=[sock])
    return 0 if server.started else 3  # 3: uvicorn's "failed to start"
