"""`python -m app`: parse the arguments, build the services, start the server, print the URL.

`build_app()` wires the NiceGUI app (unified and webui modes) and returns the keyword
arguments for `ui.run`; trainer mode is app.trainer_server.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from app.server_args import build_parser, callback_url, storage_secret, trainer_token, url_for
from app.services.container import Services
from tunerdeck_common.paths import data_dir

__all__ = ["build_app", "build_parser", "main"]


def use_storage_dir() -> None:
    """Keep NiceGUI's per-browser storage (drafts) in our data dir, not the working dir."""
    if "NICEGUI_STORAGE_PATH" in os.environ:
        return
    from nicegui import app
    from nicegui.storage import Storage

    Storage.path = (data_dir() / "webui-storage").resolve()
    app.storage = Storage()


def build_app(args: argparse.Namespace) -> dict[str, Any]:
    """Wire services, pages and routers; returns the keyword arguments for ui.run."""
    from app.server import configure
    from app.services.container import build_services

    use_storage_dir()
    webui = args.mode == "webui"
    services = build_services(
        trainer_url=args.trainer_url if webui else None,
        trainer_token=trainer_token(args) if webui else None,
        # Trainers started here report through the callbacks port when there is one.
        callback_url=callback_url(_callback_host(args), args.callback_port)
        if args.callback_port
        else None,
    )
    configure(services)
    from nicegui import app as nicegui_app

    from app import memory

    memory.install(nicegui_app)  # closed pages' elements are freed (and returned) promptly
    secret = storage_secret(args.storage_secret)
    install_access(args, secret, services)
    return {
        "host": args.host,
        "port": args.port,
        "title": "tunerdeck",
        "storage_secret": secret,
        "reload": False,
        "show": False,
        "show_welcome_message": False,
        "favicon": "🎛️",
    }


def install_access(args: argparse.Namespace, secret: str, services: Services) -> None:
    """Token off loopback (printed), size limits, no tracebacks; the optional callbacks port."""
    from nicegui import app

    from app.access import AccessPolicy, is_loopback, server_token
    from app.security import install_security

    token = server_token(args.host, args.token)
    install_security(app, AccessPolicy(token, secret), loopback_bind=is_loopback(args.host))
    if token is not None:
        app.on_startup(lambda: print(f"token: {token}", flush=True))
    if args.callback_port:
        from app.callback_listener import start_callback_listener

        host = _callback_host(args)
        listener: list[Any] = []

        def stop_listener() -> None:
            for server in listener:
                server.should_exit = True

        app.on_startup(
            lambda: listener.append(start_callback_listener(host, args.callback_port, services))
        )
        app.on_shutdown(stop_listener)


def _callback_host(args: argparse.Namespace) -> str:
    return str(args.callback_host or args.host)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode == "trainer":
        from app.trainer_server import serve

        return serve(args)
    if args.mode == "webui" and not args.trainer_url:
        print(
            "webui mode needs --trainer-url URL (a server started with --mode trainer).",
            file=sys.stderr,
        )
        return 2
    run_kwargs = build_app(args)
    from nicegui import app, ui

    if args.mode == "unified":  # this process launches trainers: have the demo model ready
        from app.services.demo_warmup import start_demo_warmup

        app.on_startup(start_demo_warmup)

    app.on_startup(
        lambda: print(f"tunerdeck is running at {url_for(args.host, args.port)}", flush=True)
    )
    ui.run(**run_kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
