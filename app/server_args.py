"""The command line of `python -m app` and what every mode derives from it: the session
secret, the address a URL shows and the callback URL trainers report to. Imports neither
NiceGUI nor a server module, so each mode's entry point can use it.
"""

from __future__ import annotations

import argparse
import os
import secrets

from state.atomic import atomic_write_text
from tunerdeck_common.paths import data_dir

TRAINER_TOKEN_ENV = "TUNERDECK_TRAINER_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app", description="tunerdeck web UI and trainer server"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    parser.add_argument("--mode", choices=("unified", "trainer", "webui"), default="unified")
    parser.add_argument(
        "--token", default=None, help="this server's API token (required off loopback)"
    )
    parser.add_argument(
        "--trainer-url", default=None, help="trainer-mode server to drive (webui mode)"
    )
    parser.add_argument(
        "--trainer-token",
        default=None,
        help=f"the token of the --trainer-url server (webui mode; default: ${TRAINER_TOKEN_ENV})",
    )
    parser.add_argument("--callback-port", type=int, default=None)
    parser.add_argument("--callback-host", default=None)
    parser.add_argument(
        "--storage-secret",
        default=None,
        help="secret that signs browser sessions (default: one generated once and kept in the data dir)",
    )
    return parser


def trainer_token(args: argparse.Namespace) -> str | None:
    """The remote trainer server's token (webui mode): --trainer-token, else the env."""
    return args.trainer_token or os.environ.get(TRAINER_TOKEN_ENV) or None


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


def _shown_host(host: str) -> str:
    """The address to put in a URL: loopback when bound to every interface."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"[{shown}]" if ":" in shown else shown


def url_for(host: str, port: int) -> str:
    return f"http://{_shown_host(host)}:{port}/"


def callback_url(host: str, port: int) -> str:
    """Where this server's trainers report."""
    return f"http://{_shown_host(host)}:{port}/callbacks"
