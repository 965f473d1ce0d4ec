"""`python -m app`: parse the arguments, build the services, start the server, print the URL.

`build_parser()` and `build_app()` are separate so the server-modes part can extend them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence

from state.atomic import atomic_write_text
from state.paths import data_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app", description="tunerdeck web UI and trainer server"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    parser.add_argument("--mode", choices=("unified", "trainer", "webui"), default="unified")
    parser.add_argument("--token", default=None, help="API token (required off loopback)")
    parser.add_argument(
        "--trainer-url", default=None, help="trainer-mode server to drive (webui mode)"
    )
    parser.add_argument("--callback-port", type=int, default=None)
    parser.add_argument("--callback-host", default=None)
    parser.add_argument(
        "--storage-secret",
        default=None,
        help="secret that signs browser sessions (default: one generated once and kept in the data dir)",
    )
    return parser


def storage_secret(explicit: str | None) -> str:
    """The session-signing secret; a stable one keeps drafts across server restarts."""
    if explicit:
        return explicit
    path = data_dir() / "webui-secret"
    if path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
    secret = secrets.token_urlsafe(32)
    atomic_write_text(path, secret + "\n")
    os.chmod(path, 0o600)
    return secret


def use_storage_dir() -> None:
    """Keep NiceGUI's per-browser storage (drafts) in our data dir, not the working dir."""
    if "NICEGUI_STORAGE_PATH" in os.environ:
        return
    from nicegui import app
    from nicegui.storage import Storage

    Storage.path = (data_dir() / "webui-storage").resolve()
    app.storage = Storage()


def build_app(args: argparse.Namespace) -> dict[str, object]:
    """Wire services, pages and routers; returns the keyword arguments for ui.run."""
    from app.server import configure
    from app.services.container import build_services

    use_storage_dir()
    trainer_url = args.trainer_url if args.mode == "webui" else None
    trainer_token = args.token or os.environ.get("TUNERDECK_TOKEN")
    configure(build_services(trainer_url=trainer_url, trainer_token=trainer_token))
    secret = storage_secret(args.storage_secret)
    install_access(args, secret)
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


def install_access(args: argparse.Namespace, secret: str) -> None:
    """Token off loopback (printed), size limits, no tracebacks; the optional callbacks port."""
    from nicegui import app

    from app.security import AccessPolicy, install_security, is_loopback, server_token
    from app.services.container import get_services

    token = server_token(args.host, args.token)
    install_security(app, AccessPolicy(token, secret), loopback_bind=is_loopback(args.host))
    if token is not None:
        app.on_startup(lambda: print(f"token: {token}", flush=True))
    if args.callback_port:
        from app.callback_listener import start_callback_listener
        from app.trainer_server import callback_url

        host = args.callback_host or args.host
        listener: list[object] = []
        app.on_startup(lambda: listener.append(start_callback_listener(host, args.callback_port)))
        app.on_shutdown(lambda: [setattr(s, "should_exit", True) for s in listener])
        # Trainers started here report through the callbacks port.
        get_services().run_service.callback_url = callback_url(host, args.callback_port)


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/"


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
