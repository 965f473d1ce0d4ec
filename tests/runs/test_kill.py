"""Kill: a trainer that hangs after Stop can be killed at once from the run bar (the button
shows only while stopping) or with `POST /api/runs/{id}/kill`, instead of waiting out the grace
period. The trainer is fake_trainer.py told to hang after SIGTERM."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nicegui.testing import User

from ..waiting import wait_until_async
from .helpers import demo_config, element, set_config, wait_for_run


@pytest.fixture
def trainer_command(
    fake_trainer_command: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., list[str]]:
    monkeypatch.setenv("FAKE_STUCK_ON_STOP", "1")
    return fake_trainer_command


async def test_kill_from_the_run_bar_while_a_stop_hangs(app_user: User) -> None:
    await app_user.open("/")
    set_config(app_user, demo_config(10_000))
    app_user.find(marker="start").click()
    await wait_until_async(
        lambda: "running" in element(app_user, "run-status").text, 60, what="running"
    )
    await app_user.should_not_see(marker="kill")  # not offered while things go normally

    app_user.find(marker="stop").click()
    await wait_until_async(
        lambda: "stopping" in element(app_user, "run-status").text, 30, what="stopping"
    )
    await app_user.should_see(marker="kill")
    app_user.find(marker="kill").click()
    await wait_until_async(
        lambda: "failed" in element(app_user, "run-status").text, 30, what="killed"
    )
    await app_user.should_not_see(marker="kill")
    service = app_user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    (run,) = await service.list_runs()
    assert "killed on request" in run.message
    assert run.log_tail  # what the trainer printed last is kept


async def test_kill_through_rest(app_user: User) -> None:
    client = app_user.http_client
    service = app_user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    run = (await client.post("/api/runs", json={"config": demo_config(10_000)})).json()
    await wait_for_run(service, run["id"], ("running",), timeout=60, step_at_least=1)
    assert (await client.post(f"/api/runs/{run['id']}/stop")).json()["state"] == "stopping"

    killed = await client.post(f"/api/runs/{run['id']}/kill")
    assert killed.status_code == 200, killed.text
    failed = await wait_for_run(service, run["id"], ("failed",), timeout=30)
    assert "killed on request" in failed.message

    again = await client.post(f"/api/runs/{run['id']}/kill")
    assert again.status_code == 409
    assert "nothing to kill" in again.json()["error"]
    missing = await client.post("/api/runs/no-such-run/kill")
    assert missing.status_code == 404
