"""A page on another site cannot change anything through the browser of someone who uses this
server: state-changing requests from a foreign Origin/Referer are refused (403) and so are
non-JSON bodies (415), on loopback without a token as with one. Requests that carry no Origin
(curl, scripts, trainers) and this server's own pages still work."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.access import AccessPolicy
from app.security import CrossSiteMiddleware
from app.services.container import Services
from app.trainer_server import build_trainer_app

from ..demo_run import demo_config
from ..runs.helpers import fake_command

EVIL = "http://evil.example"
TOKEN = "s3cret-token"


@pytest.fixture
def run_services(services: Services, monkeypatch: pytest.MonkeyPatch) -> Services:
    monkeypatch.setenv("FAKE_STEP_S", "0.2")  # long enough to still be running when stopped
    services.run_service.command_builder = fake_command
    return services


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client,
        app.router.lifespan_context(app),
    ):
        yield client


@pytest.fixture
async def loopback(run_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """Trainer mode on loopback: no token at all."""
    async for client in _client(build_trainer_app(run_services, AccessPolicy(None, "secret"))):
        yield client
    await _kill_all(run_services)


@pytest.fixture
async def guarded(run_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """Trainer mode off loopback: the token is sent (the cookie of a logged-in browser)."""
    app = build_trainer_app(run_services, AccessPolicy(TOKEN, "secret"))
    async for client in _client(app):
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client
    await _kill_all(run_services)


async def _kill_all(services: Services) -> None:
    from app.services.run_launch import kill_group

    for live in services.run_service.history.runs.values():
        if live.record.pid:
            kill_group(live.record.pid)


@pytest.fixture(params=["loopback", "guarded"])
async def either(request: pytest.FixtureRequest, run_services: Services):
    """Both: loopback without a token, and off loopback with the token."""
    token = TOKEN if request.param == "guarded" else None
    app = build_trainer_app(run_services, AccessPolicy(token, "secret"))
    async for client in _client(app):
        if token:
            client.headers["Authorization"] = f"Bearer {token}"
        yield client
    await _kill_all(run_services)


BODY = '{"config": {"model_family": "demo", "max_train_steps": 200}}'


async def test_foreign_form_post_cannot_start_a_run(either: httpx.AsyncClient) -> None:
    client = either
    # What <form enctype="text/plain" method="post" action="http://127.0.0.1:8080/api/runs">
    # on another site sends.
    response = await client.post(
        "/api/runs", content=BODY, headers={"Content-Type": "text/plain", "Origin": EVIL}
    )
    assert response.status_code == 403
    assert "evil.example" in response.json()["error"]
    # The same with only a Referer (an old browser, or Origin stripped by a privacy setting).
    response = await client.post(
        "/api/runs",
        content=BODY,
        headers={"Content-Type": "application/json", "Referer": EVIL + "/page.html"},
    )
    assert response.status_code == 403
    assert (await client.get("/api/runs")).json() == []


async def test_non_json_bodies_are_refused_even_without_an_origin(
    either: httpx.AsyncClient,
) -> None:
    client = either
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"):
        response = await client.post("/api/runs", content=BODY, headers={"Content-Type": ctype})
        assert response.status_code == 415, ctype
        assert "application/json" in response.json()["error"]
    assert (await client.get("/api/runs")).json() == []


async def test_no_cors_fetch_cannot_stop_kill_resume_or_delete(
    loopback: httpx.AsyncClient,
) -> None:
    started = await loopback.post("/api/runs", json={"config": demo_config(200)})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    # fetch(url, {method: "POST", mode: "no-cors"}) from another site: Origin, no body.
    for method, path in (
        ("POST", f"/api/runs/{run_id}/stop"),
        ("POST", f"/api/runs/{run_id}/kill"),
        ("POST", f"/api/runs/{run_id}/resume"),
        ("DELETE", f"/api/runs/{run_id}"),
        ("POST", f"/api/queue/{run_id}/move?position=0"),
        ("DELETE", f"/api/queue/{run_id}"),
    ):
        response = await loopback.request(method, path, headers={"Origin": EVIL})
        assert response.status_code == 403, path
        # "null": a sandboxed frame or a redirected request.
        response = await loopback.request(method, path, headers={"Origin": "null"})
        assert response.status_code == 403, path
    run = (await loopback.get(f"/api/runs/{run_id}")).json()
    assert run["state"] in ("queued", "starting", "running")
    # This server's own page (same origin) and curl (no Origin) still stop it.
    stopped = await loopback.post(
        f"/api/runs/{run_id}/stop", headers={"Origin": "http://127.0.0.1:8080"}
    )
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["state"] in ("stopping", "stopped")


async def test_same_origin_and_originless_json_still_start_runs(
    loopback: httpx.AsyncClient,
) -> None:
    own = await loopback.post(
        "/api/runs",
        json={"config": demo_config(1)},
        headers={"Origin": "http://127.0.0.1:8080", "Referer": "http://127.0.0.1:8080/runs"},
    )
    assert own.status_code == 201, own.text
    charset = await loopback.post(
        "/api/runs",
        content='{"config": {"model_family": "demo", "max_train_steps": 1}}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 201, charset.text


async def test_login_from_another_site_is_refused(guarded: httpx.AsyncClient) -> None:
    guarded.headers.pop("Authorization")
    response = await guarded.post(
        "/login", data={"token": TOKEN, "next": "/"}, headers={"Origin": EVIL}
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    own = await guarded.post(
        "/login", data={"token": TOKEN, "next": "/"}, headers={"Origin": "http://127.0.0.1:8080"}
    )
    assert own.status_code == 303


async def test_allowed_origins_for_a_reverse_proxy(
    loopback: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"Origin": "https://tuner.example.org"}
    body = {"config": demo_config(1)}
    assert (await loopback.post("/api/runs", json=body, headers=headers)).status_code == 403
    monkeypatch.setenv("TUNERDECK_ALLOWED_ORIGINS", "https://tuner.example.org")
    assert (await loopback.post("/api/runs", json=body, headers=headers)).status_code == 201


def test_websocket_from_another_site_is_closed() -> None:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    app = CrossSiteMiddleware(Starlette(routes=[WebSocketRoute("/ws", echo)]))
    client = TestClient(app)
    with client.websocket_connect("/ws", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_text() == "hello"
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect("/ws", headers={"Origin": EVIL}) as ws,
    ):
        ws.receive_text()
    assert refused.value.code == 1008


async def test_dns_rebinding_hosts_are_refused_on_a_loopback_bind(run_services: Services) -> None:
    # A page of evil.example whose name was re-pointed at 127.0.0.1 is same-origin with
    # itself: only the Host header tells it apart.
    app = build_trainer_app(run_services, AccessPolicy(None, "secret"), loopback_bind=True)
    async for client in _client(app):
        rebound = {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}
        assert (await client.get("/api/runs", headers=rebound)).status_code == 403
        started = await client.post("/api/runs", json={"config": demo_config(1)}, headers=rebound)
        assert started.status_code == 403
        assert "loopback" in started.json()["error"]
        for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080"):
            assert (await client.get("/api/runs", headers={"Host": host})).json() == []
