"""Who may come in: the server token, its login page and cookie, and the login rate limit.

Bound to loopback, nothing is asked (`AccessPolicy.token` is None). Bound to anything else,
every request needs the server token (`Authorization: Bearer T`, `?token=T`, or the cookie
`/login` sets once: an HMAC of the token under the storage secret, so the cookie alone does not
reveal the token and changes when either changes). Wrong tokens at `/login` are limited per
client address and in all (429 past the limit). The middlewares that enforce this are in
app/security.py.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import html
import ipaddress
import os
import secrets
import time
import urllib.parse
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

COOKIE = "tunerdeck_auth"
TOKEN_ENV = "TUNERDECK_TOKEN"


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


class LoginLimiter:
    """Wrong tokens allowed per window: `per_client` from one address, `overall` in all."""

    def __init__(self, per_client: int = 10, overall: int = 60, window_s: float = 60.0) -> None:
        self.per_client = per_client
        self.overall = overall
        self.window_s = window_s
        self._failures: dict[str, collections.deque[float]] = {}
        self._all: collections.deque[float] = collections.deque()

    def _trim(self, times: collections.deque[float], now: float) -> None:
        while times and now - times[0] > self.window_s:
            times.popleft()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again (0: now)."""
        now = time.monotonic()
        self._trim(self._all, now)
        mine = self._failures.get(client, collections.deque())
        self._trim(mine, now)
        if not mine:
            self._failures.pop(client, None)
        waits = [0.0]
        if len(mine) >= self.per_client:
            waits.append(self.window_s - (now - mine[0]))
        if len(self._all) >= self.overall:
            waits.append(self.window_s - (now - self._all[0]))
        return max(waits)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        self._failures.setdefault(client, collections.deque()).append(now)
        self._all.append(now)
        if len(self._failures) > 10_000:  # many addresses: forget the quietest
            self._failures.pop(next(iter(self._failures)))


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


def install_login(app: FastAPI, policy: AccessPolicy, limiter: LoginLimiter | None = None) -> None:
    """GET/POST /login: asks for the token once and keeps a signed cookie."""
    limiter = limiter or LoginLimiter()

    @app.get("/login", include_in_schema=False)
    async def login_form(next: str = "/") -> HTMLResponse:
        return HTMLResponse(_LOGIN_FORM.format(error="", next=html.escape(_safe_next(next))))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        target = _safe_next(form.get("next", ["/"])[0])
        if policy.token is None:
            return RedirectResponse(target, status_code=303)
        client = request.client.host if request.client else ""
        wait = limiter.retry_after(client)
        if wait > 0:
            page = _LOGIN_FORM.format(
                error=f'<p class="err">Too many wrong tokens: try again in {wait:.0f} s.</p>',
                next=html.escape(target),
            )
            return HTMLResponse(
                page, status_code=429, headers={"Retry-After": str(max(1, round(wait)))}
            )
        if not policy.token_ok(form.get("token", [""])[0]):
            limiter.failed(client)
            page = _LOGIN_FORM.format(
                error='<p class="err">Wrong token.</p>', next=html.escape(target)
            )
            return HTMLResponse(page, status_code=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE, policy.cookie_value(), httponly=True, samesite="lax", max_age=30 * 86400
        )
        return response
