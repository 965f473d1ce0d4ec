"""`python -m app --mode trainer`: the headless server a GPU box runs. FastAPI only, one
port: the runs REST API, `/callbacks` and the SSE streams. NiceGUI is never imported here
(a test checks `sys.modules`), so this module must not import app.server or app.pages.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.routes import install_routes
from app.security import AccessPolicy, install_security, is_loopback, server_token
from app.services.container import Services, build_services, set_services


def callback_url(host: str, port: int) -> str:
    """Where this server's trainers report: loopback when bound to every interface."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/callbacks"


def build_trainer_app(
    services: Services, policy: AccessPolicy, *, loopback_bind: bool = False
) -> FastAPI:
    """The trainer-mode app over `services` (made current for the routes)."""
    set_services(services)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await services.run_service.ensure_started()
        yield
        await services.run_service.shutdown()

    app = FastAPI(title="tunerdeck trainer server", version="1", lifespan=lifespan)
    install_routes(app)

    @app.get("/api/server", tags=["server"])
    async def server_info() -> dict[str, object]:
        """What kind of server this is (the web UI in webui mode checks it)."""
        return {"mode": "trainer", "nicegui_loaded": "nicegui" in sys.modules}

    install_security(app, policy, loopback_bind=loopback_bind)
    return app


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import storage_secret

    token = server_token(args.host, args.token)
    services = build_services(nicegui_hooks=False)
    services.run_service.callback_url = callback_url(args.host, args.port)
    app = build_trainer_app(
        services,
        AccessPolicy(token, storage_secret(args.storage_secret)),
        loopback_bind=is_loopback(args.host),
    )
    print(f"tunerdeck trainer server at http://{args.host}:{args.port}/", flush=True)
    if token is not None:
        print(f"token: {token}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
