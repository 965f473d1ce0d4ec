"""Access control: a non-loopback bind refuses requests without the token (401) and serves
them with it (header, query or the login cookie); callbacks need the run's own token; size
limits; no traceback reaches a client."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.access import COOKIE, AccessPolicy, server_token
from app.services.container import Services
from app.trainer_server import build_trainer_app

from .helpers import MemoryRuns, progress

TOKEN = "s3cret-token"


def test_token_is_needed_only_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNERDECK_TOKEN", raising=False)
    assert server_token("127.0.0.1", None) is None
    assert server_token("::1", "given") is None
    assert server_token("0.0.0.0", "given") == "given"
    generated = server_token("192.168.1.5", None)
    assert generated and len(generated) >= 24
    monkeypatch.setenv("TUNERDECK_TOKEN", "from-env")
    assert server_token("0.0.0.0", None) == "from-env"


@pytest.fixture
def guarded_app(services: Services, memory_runs: MemoryRuns) -> FastAPI:
    # What `--host 0.0.0.0 --token s3cret-token` builds.
    app = build_trainer_app(services, AccessPolicy(server_token("0.0.0.0", TOKEN), "secret"))

    @app.get("/api/explode")
    async def explode() -> None:
        raise RuntimeError("internal detail that must not leak")

    return app


@pytest.fixture
async def client(guarded_app: FastAPI):
    transport = httpx.ASGITransport(app=guarded_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_without_token_requests_are_refused(client: httpx.AsyncClient) -> None:
    for path in ("/api/runs", "/api/events/stream", "/api/runs/x/stream", "/openapi.json"):
        response = await client.get(path)
        assert response.status_code == 401, path
        assert "token" in response.json()["error"]
    wrong = await client.get("/api/runs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


async def test_with_token_requests_are_served(
    client: httpx.AsyncClient, memory_runs: MemoryRuns
) -> None:
    memory_runs.add_run("r1")
    by_header = await client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert by_header.status_code == 200
    assert [r["id"] for r in by_header.json()] == ["r1"]
    by_query = await client.get(f"/api/runs?token={TOKEN}")
    assert by_query.status_code == 200


async def test_browser_is_sent_to_login_once_then_kept_by_cookie(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/api/runs", headers={"Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=")
    form = await client.get(page.headers["location"])
    assert form.status_code == 200 and "token" in form.text
    bad = await client.post("/login", data={"token": "wrong", "next": "/api/runs"})
    assert bad.status_code == 401 and "Wrong token" in bad.text
    good = await client.post("/login", data={"token": TOKEN, "next": "/api/runs"})
    assert good.status_code == 303 and good.headers["location"] == "/api/runs"
    cookie = good.cookies[COOKIE]
    assert TOKEN not in cookie
    assert (await client.get("/api/runs")).status_code == 200  # the client kept the cookie
    client.cookies.clear()
    assert (await client.get("/api/runs")).status_code == 401
    # An open redirect through next= is refused.
    evil = await client.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert evil.headers["location"] == "/"


async def test_callbacks_need_the_runs_own_token_not_the_servers(
    client: httpx.AsyncClient, memory_runs: MemoryRuns
) -> None:
    memory_runs.add_run("r1")
    memory_runs.tokens["r1"] = "run-token"
    body = {"run_id": "r1", "events": [progress("r1", 1).model_dump()]}
    for token in (None, "wrong", TOKEN):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        refused = await client.post("/callbacks", json=body, headers=headers)
        assert refused.status_code == 401, token
    assert memory_runs.events["r1"] == []
    accepted = await client.post(
        "/callbacks", json=body, headers={"Authorization": "Bearer run-token"}
    )
    assert accepted.status_code == 200
    assert accepted.json()["accepted"] == 1


async def test_oversized_callback_body_is_refused(
    client: httpx.AsyncClient, memory_runs: MemoryRuns
) -> None:
    memory_runs.add_run("r1")
    memory_runs.tokens["r1"] = "run-token"
    big = b'{"run_id": "r1", "events": [], "pad": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/callbacks",
        content=big,
        headers={"Authorization": "Bearer run-token", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "too large" in response.json()["error"]


async def test_streamed_oversized_body_is_refused_without_content_length(
    client: httpx.AsyncClient,
) -> None:
    async def chunks():
        for _ in range(10):
            yield b"x" * (1024 * 1024)

    response = await client.post(
        "/api/runs",
        content=chunks(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_errors_never_return_a_traceback(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/explode", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 500
    assert "Traceback" not in response.text
    assert "internal detail" not in response.text
    assert "log" in response.json()["error"]
