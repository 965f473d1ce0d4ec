"""Access control for every mode: a token off loopback, request size limits, no tracebacks.

- Bound to loopback, nothing is asked. Bound to anything else, every page, REST route, stream
  and websocket needs the server token: `Authorization: Bearer T`, `?token=T`, or the cookie
  that `/login` sets once (an HMAC of the token under the storage secret, so the cookie alone
  does not reveal the token and changes when either changes).
- `/callbacks` is never behind the server token: it checks each run's own token itself.
- Bodies over a path's limit are refused with 413 before the app reads them whole.
- Unhandled errors answer a short JSON/HTML message; the traceback goes to the log only.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import logging
import os
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "tunerdeck_auth"
TOKEN_ENV = "TUNERDECK_TOKEN"
# Paths reachable without the server token: the login form and the callbacks (own tokens).
OPEN_PATHS = ("/login", "/callbacks")
MiB = 1024 * 1024
# Longest prefix wins; "" is the default for every other path.
# "/_nicegui/client/" is where ui.upload posts; its only user is the config import (1 MiB
# files, checked again with a clear message), so 2 MiB leaves room for the multipart framing.
BODY_LIMITS: dict[str, int] = {
    "/callbacks": 8 * MiB,
    "/api/": 4 * MiB,
    "/_nicegui/client/": 2 * MiB,
    "": 64 * MiB,
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_token(host: str, explicit: str | None) -> str | None:
    """The token this bind needs: None on loopback; else --token, $TUNERDECK_TOKEN or a new one."""
    if is_loopback(host):
        return None
    return explicit or os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)


@dataclass(frozen=True)
class AccessPolicy:
    token: str | None  # None: no token required (loopback bind)
    secret: str  # signs the login cookie

    def cookie_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.secret.encode(), self.token.encode(), hashlib.sha256).hexdigest()

    def token_ok(self, given: str | None) -> bool:
        return bool(self.token and given) and secrets.compare_digest(
            str(given).encode(), str(self.token).encode()
        )

    def allows(self, headers: dict[str, str], query: str) -> bool:
        if self.token is None:
            return True
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self.token_ok(auth[7:].strip()):
            return True
        params = urllib.parse.parse_qs(query)
        if any(self.token_ok(t) for t in params.get("token", [])):
            return True
        return secrets.compare_digest(_cookies(headers).get(COOKIE, ""), self.cookie_value())


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            cookies[name] = value
    return cookies


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _is_open(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in OPEN_PATHS)


class TokenMiddleware:
    """Refuses requests without the server token: 401 JSON for the API, a redirect to
    /login for a browser asking for a page, close code 1008 for websockets."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.policy.token is None:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = _headers(scope)
        query = scope.get("query_string", b"").decode("latin-1")
        if _is_open(path) or self.policy.allows(headers, query):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response: Response
        if scope.get("method") == "GET" and "text/html" in headers.get("accept", ""):
            target = path + (f"?{query}" if query else "")
            response = RedirectResponse(
                "/login?" + urllib.parse.urlencode({"next": target}), status_code=303
            )
        else:
            response = JSONResponse(
                {
                    "error": "This server needs its token: send 'Authorization: Bearer TOKEN' "
                    "or ?token=TOKEN (printed when the server started).",
                    "errors": [],
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def body_limit(path: str, limits: dict[str, int] = BODY_LIMITS) -> int:
    best = max((p for p in limits if path.startswith(p)), key=len)
    return limits[best]


class BodyLimitMiddleware:
    """413 for a body over its path's limit, by Content-Length or while it streams in."""

    def __init__(self, app: ASGIApp, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.limits = limits or BODY_LIMITS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope.get("path", ""), self.limits)
        length = _headers(scope).get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"error": f"Request body too large: at most {limit // 1024} KiB here.", "errors": []},
        status_code=413,
    )


_LOGIN_FORM = """<!doctype html><html><head><meta charset="utf-8"><title>tunerdeck login</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:4rem auto}}input{{width:100%;
padding:.5rem;margin:.5rem 0}}.err{{color:#b00020}}</style></head><body>
<h2>tunerdeck</h2><p>This server is reachable from the network: enter the token printed when it
started.</p>{error}<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<input type="password" name="token" placeholder="token" autofocus>
<input type="submit" value="Sign in"></form></body></html>"""


def _safe_next(target: str) -> str:
    # Only same-site paths: never an absolute or protocol-relative URL (open redirect).
    return target if target.startswith("/") and not target.startswith("//") else "/"


def install_login(app: FastAPI, policy: AccessPolicy) -> None:
    """GET/POST /login: asks for the token once and keeps a signed cookie."""

    @app.get("/login", include_in_schema=False)
    async def login_form(next: str = "/") -> HTMLResponse:
        return HTMLResponse(_LOGIN_FORM.format(error="", next=html.escape(_safe_next(next))))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        target = _safe_next(form.get("next", ["/"])[0])
        if policy.token is None:
            return RedirectResponse(target, status_code=303)
        if not policy.token_ok(form.get("token", [""])[0]):
            page = _LOGIN_FORM.format(
                error='<p class="err">Wrong token.</p>', next=html.escape(target)
            )
            return HTMLResponse(page, status_code=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE, policy.cookie_value(), httponly=True, samesite="lax", max_age=30 * 86400
        )
        return response


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    message = "Internal error: the server log has the details."
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(f"<h3>{message}</h3>", status_code=500)
    return Response(
        json.dumps({"error": message, "errors": []}),
        status_code=500,
        media_type="application/json",
    )


def install_security(app: FastAPI, policy: AccessPolicy) -> None:
    """Login routes, the token and size-limit middlewares and the no-traceback handler."""
    install_login(app, policy)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(TokenMiddleware, policy=policy)  # outermost: checked first
