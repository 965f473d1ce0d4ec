"""Access control for every mode: a token off loopback, request size limits, no tracebacks.

- Bound to loopback, nothing is asked. Bound to anything else, every page, REST route, stream
  and websocket needs the server token: `Authorization: Bearer T`, `?token=T`, or the cookie
  that `/login` sets once (an HMAC of the token under the storage secret, so the cookie alone
  does not reveal the token and changes when either changes).
- `/callbacks` is never behind the server token: it checks each run's own token itself.
- Bodies over a path's limit are refused with 413 before the app reads them whole.
- Unhandled errors answer a short JSON/HTML message; the traceback goes to the log only.
- Cross-site requests are refused in every mode, token or not (a page on another site must
  not start or stop runs through the browser of someone on this machine): a state-changing
  request (any method but GET/HEAD/OPTIONS) or a websocket whose `Origin` (or, without one,
  `Referer`) names another origin than the `Host` it was sent to gets 403; a state-changing
  request with a body that is not `application/json` gets 415 (a form or a `no-cors` fetch
  cannot send that type without a CORS preflight, which is never granted). Exempt from the
  JSON rule only: `/login` (its HTML form) and NiceGUI's own transport under `/_nicegui`
  (still same-origin only). Requests with neither header (curl, scripts, trainers) pass.
  Origins behind a reverse proxy that rewrites `Host`: list them in
  $TUNERDECK_ALLOWED_ORIGINS (comma-separated, e.g. `https://tuner.example.org`).
- Bound to loopback, a request whose `Host` is not a loopback name (nor an allowed origin's
  host) is refused with 403: a DNS-rebinding page would otherwise be same-origin.
- No page may be framed by another site (`X-Frame-Options: DENY`, CSP `frame-ancestors`).
- Wrong tokens at `/login` are limited per client address and in all (429 past the limit;
  app/access.py has the token, the login page and the limit), and `?token=` never reaches
  the access log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.access import AccessPolicy, install_login, is_loopback

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ALLOWED_ORIGINS_ENV = "TUNERDECK_ALLOWED_ORIGINS"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths whose state-changing requests need not be JSON (same-origin still required).
NON_JSON_PATHS = ("/login", "/_nicegui")
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


def _origin_key(url: str, default_scheme: str = "http") -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL; None when it names no host ("null")."""
    try:
        parts = urllib.parse.urlsplit(url if "//" in url else f"//{url}")
        host = (parts.hostname or "").lower()
        scheme = (parts.scheme or default_scheme).lower()
        port = parts.port or (443 if scheme in ("https", "wss") else 80)
    except ValueError:
        return None
    return (scheme.replace("ws", "http", 1), host, port) if host else None


def allowed_origins() -> set[tuple[str, str, int]]:
    """Origins besides the server's own (a reverse proxy's public address)."""
    listed = os.environ.get(ALLOWED_ORIGINS_ENV, "")
    return {key for o in listed.split(",") if o.strip() and (key := _origin_key(o.strip()))}


def cross_site_reason(scope: Scope, headers: dict[str, str]) -> str | None:
    """Why this request counts as sent by another site's page, or None when it does not."""
    source = headers.get("origin") or headers.get("referer")
    if source is None:
        return None  # not sent by a browser page: curl, a script, a trainer
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    claimed = _origin_key(source)
    own = _origin_key(headers.get("host", ""), scheme)
    if claimed is not None and own is not None and claimed[1:] == own[1:]:
        return None
    if claimed is not None and claimed in allowed_origins():
        return None
    return f"it comes from {source.split('?')[0][:200]!r}, not from this server's own pages"


def _json_body_problem(scope: Scope, headers: dict[str, str]) -> str | None:
    path = scope.get("path", "")
    if any(
        path == p or path.startswith(p + "/") or path.startswith(p + "_") for p in NON_JSON_PATHS
    ):
        return None
    ctype = headers.get("content-type")
    has_body = headers.get("content-length", "0") not in ("", "0") or (
        "transfer-encoding" in headers
    )
    if ctype is None and not has_body:
        return None  # a bodiless POST /stop from curl
    media = (ctype or "").split(";")[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return None
    return f"its body is {media or 'untyped'}"


class CrossSiteMiddleware:
    """403 for state-changing requests and websockets from another origin; 415 for
    state-changing requests whose body is not JSON (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or (
            kind == "http" and scope.get("method", "GET") in SAFE_METHODS
        ):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        reason = cross_site_reason(scope, headers)
        if reason is not None:
            log.warning(
                "refused cross-site %s %s: %s",
                scope.get("method", "websocket"),
                scope["path"],
                reason,
            )
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            message = (
                f"Refused: {reason}. Changes are accepted only from this server's pages or "
                "from clients that send no Origin (curl, scripts)."
            )
            await JSONResponse({"error": message, "errors": []}, status_code=403)(
                scope, receive, send
            )
            return
        problem = _json_body_problem(scope, headers) if kind == "http" else None
        if problem is not None:
            message = (
                f"Refused: {problem}. Send the body as JSON with 'Content-Type: application/json'."
            )
            await JSONResponse({"error": message, "errors": []}, status_code=415)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


class LoopbackHostMiddleware:
    """On a loopback bind: 403 unless `Host` names this machine (DNS rebinding)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _headers(scope).get("host", "")
        key = _origin_key(host)
        allowed = {h for _, h, _ in allowed_origins()}
        if key is not None and (is_loopback(key[1]) or key[1] in allowed):
            await self.app(scope, receive, send)
            return
        log.warning("refused a request for Host %r on a loopback bind", host[:200])
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        message = (
            f"Refused: this server listens on loopback only, and {host[:200]!r} is not a name of "
            "this machine. Open it as http://127.0.0.1:PORT or http://localhost:PORT."
        )
        await JSONResponse({"error": message, "errors": []}, status_code=403)(scope, receive, send)


FRAME_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]


class FrameGuardMiddleware:
    """Every HTTP answer says it must not be framed (clickjacking) or content-sniffed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in FRAME_HEADERS if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, guarded_send)


_TOKEN_IN_QUERY = re.compile(r"((?:^|[?&])token=)[^&\s\"]*", re.IGNORECASE)


def redact_token(text: str) -> str:
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class RedactTokenFilter(logging.Filter):
    """Keeps `?token=...` out of the access log (uvicorn logs each request's full path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_token(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_token(record.msg)
        return True


def redact_access_log() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokenFilter) for f in logger.filters):
        logger.addFilter(RedactTokenFilter())


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


def install_security(app: FastAPI, policy: AccessPolicy, *, loopback_bind: bool = False) -> None:
    """Login routes, the cross-site, token and size-limit middlewares and the no-traceback
    handler; with `loopback_bind`, also the Host check against DNS rebinding."""
    install_login(app, policy)
    redact_access_log()
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(TokenMiddleware, policy=policy)
    app.add_middleware(CrossSiteMiddleware)
    if loopback_bind:
        app.add_middleware(LoopbackHostMiddleware)
    app.add_middleware(FrameGuardMiddleware)  # outermost: on every answer, refusals too
