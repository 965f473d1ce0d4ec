"""Small leaks closed: /callbacks answers an unknown run as it answers a wrong token (no
run-id oracle), `?token=` never reaches the access log, wrong login tokens are limited, and
no page can be framed by another site."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from app import security
from app.access import AccessPolicy
from app.services.container import Services
from app.trainer_server import build_trainer_app

from .helpers import MemoryRuns, progress

TOKEN = "s3cret-token"


@pytest.fixture
def app_with_token(services: Services, memory_runs: MemoryRuns) -> FastAPI:
    return build_trainer_app(services, AccessPolicy(TOKEN, "secret"))


@pytest.fixture
async def client(app_with_token: FastAPI):
    transport = httpx.ASGITransport(app=app_with_token, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_callbacks_do_not_tell_which_runs_exist(
    client: httpx.AsyncClient, memory_runs: MemoryRuns
) -> None:
    memory_runs.add_run("real-run")
    memory_runs.tokens["real-run"] = "run-token"
    answers = []
    for run_id in ("real-run", "ghost-run"):
        event = progress(run_id, 1).model_dump()
        response = await client.post(
            "/callbacks",
            json={"run_id": run_id, "events": [event]},
            headers={"Authorization": "Bearer guess"},
        )
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401


def test_token_in_the_query_is_redacted_in_the_access_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    security.redact_access_log()
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        # What uvicorn's access logger is called with for each request.
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5555",
            "GET",
            f"/api/runs?after=3&token={TOKEN}&x=1",
            "1.1",
            200,
        )
    assert TOKEN not in caplog.text
    assert "token=[redacted]&x=1" in caplog.text and "after=3" in caplog.text


async def test_wrong_login_tokens_are_limited(client: httpx.AsyncClient) -> None:
    statuses = []
    for _ in range(30):
        response = await client.post("/login", data={"token": "guess", "next": "/"})
        statuses.append(response.status_code)
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}
    assert int(response.headers["retry-after"]) > 0
    # Locked out, even the right token waits: guessing cannot go faster than the limit.
    right = await client.post("/login", data={"token": TOKEN, "next": "/"})
    assert right.status_code == 429


async def test_pages_and_answers_cannot_be_framed(client: httpx.AsyncClient) -> None:
    for path in ("/login", "/api/runs", "/openapi.json"):
        response = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
