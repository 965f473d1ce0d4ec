"""The REST API and POST /callbacks on the real app, with the real trainer behind them."""

from __future__ import annotations

from typing import Any

import pytest
from nicegui.testing import User

from ..waiting import wait_until_async
from .helpers import demo_config

pytestmark = pytest.mark.slow


async def poll(
    user: User, run_id: str, states: tuple[str, ...], step_at_least: int = 0, timeout: float = 240
) -> dict[str, Any]:
    """Until GET /api/runs/{id} shows one of `states` (and past `step_at_least`)."""
    run: dict[str, Any] = {}

    async def reached() -> dict[str, Any] | None:
        nonlocal run
        response = await user.http_client.get(f"/api/runs/{run_id}")
        assert response.status_code == 200, response.text
        run = response.json()
        return run if run["state"] in states and run["step"] >= step_at_least else None

    return await wait_until_async(
        reached, timeout, what=f"run {run_id} to be {states}", detail=lambda: f"last: {run}"
    )


async def test_start_stop_resume_through_rest(app_user: User) -> None:
    client = app_user.http_client
    created = await client.post("/api/runs", json={"config": demo_config(30)})
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["id"] and run["state"] in ("starting", "queued")
    listed = (await client.get("/api/runs")).json()
    assert [r["id"] for r in listed] == [run["id"]]

    await poll(app_user, run["id"], ("running",), step_at_least=1)
    stop = await client.post(f"/api/runs/{run['id']}/stop")
    assert stop.status_code == 200 and stop.json()["state"] == "stopping"
    stopped = await poll(app_user, run["id"], ("stopped",))
    assert stopped["has_checkpoint"] and stopped["can_resume"]

    resumed = await client.post(f"/api/runs/{run['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    done = await poll(app_user, run["id"], ("completed",))
    assert done["step"] == 30

    events = (await client.get(f"/api/runs/{run['id']}/events", params={"after": 0})).json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    progress = [e["data"]["step"] for e in events if e["type"] == "progress"]
    resumed_at = progress.index(stopped["step"]) + 1
    assert progress[resumed_at] == stopped["step"] + 1  # continued at the next step
    later = (
        await client.get(f"/api/runs/{run['id']}/events", params={"after": events[-3]["seq"]})
    ).json()
    assert [e["seq"] for e in later] == [events[-2]["seq"], events[-1]["seq"]]

    conflict = await client.post(f"/api/runs/{run['id']}/resume")
    assert (
        conflict.status_code == 409 and "only a stopped or failed run" in conflict.json()["error"]
    )
    deleted = await client.delete(f"/api/runs/{run['id']}")
    assert deleted.status_code == 200
    assert (await client.get(f"/api/runs/{run['id']}")).status_code == 404


async def test_rest_errors_say_what_to_do(app_user: User) -> None:
    client = app_user.http_client
    bad = await client.post("/api/runs", json={"config": demo_config(3, learning_rate=-1)})
    assert bad.status_code == 422
    assert "fix" in bad.json()["error"] and any("learning_rate" in e for e in bad.json()["errors"])
    missing = await client.post("/api/runs", json={"config_name": "no-such-config"})
    assert missing.status_code == 404 and "no-such-config" in missing.json()["error"]
    empty = await client.post("/api/runs", json={})
    assert empty.status_code == 400 and "config_name" in empty.json()["error"]
    unknown = await client.get("/api/runs/nope")
    assert unknown.status_code == 404 and "GET /api/runs" in unknown.json()["error"]
    assert (await client.get("/api/runs")).json() == []
    hardware = (await client.get("/api/hardware")).json()
    assert hardware["ram_total_mb"] > 0
    assert hardware["gpus"] or "No NVIDIA GPU found" in hardware["gpu_status"]


async def test_bad_callbacks_are_refused_while_the_run_goes_on(app_user: User) -> None:
    client = app_user.http_client
    service = app_user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    run = (await client.post("/api/runs", json={"config": demo_config(30)})).json()
    await poll(app_user, run["id"], ("running",), step_at_least=1)
    token = service.token_of(run["id"])
    good = (await client.get(f"/api/runs/{run['id']}/events")).json()[0]

    wrong_token = await client.post(
        "/callbacks",
        json={"run_id": run["id"], "events": [good]},
        headers={"Authorization": "Bearer nope"},
    )
    assert wrong_token.status_code == 401
    no_token = await client.post("/callbacks", json={"run_id": run["id"], "events": [good]})
    assert no_token.status_code == 401
    unknown = await client.post(
        "/callbacks",
        json={"run_id": "ghost", "events": [{**good, "run_id": "ghost"}]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert unknown.status_code == 401  # the same answer as a wrong token: no run-id oracle
    assert unknown.json()["error"] == wrong_token.json()["error"]

    malformed = {**good, "seq": 10_000_000, "type": "progress", "data": {"step": "many"}}
    mixed = await client.post(
        "/callbacks",
        json={"run_id": run["id"], "events": [malformed, good]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert mixed.status_code == 422
    body = mixed.json()
    assert body["rejected"][0]["index"] == 0
    assert "data.step" in body["rejected"][0]["error"] or "step" in body["rejected"][0]["error"]
    assert body["duplicates"] == 1  # the valid one was kept (already known: deduped)
    not_json = await client.post(
        "/callbacks", content=b"{", headers={"Authorization": f"Bearer {token}"}
    )
    assert not_json.status_code == 400

    done = await poll(app_user, run["id"], ("completed",))
    assert done["step"] == 30
    events = (await client.get(f"/api/runs/{run['id']}/events")).json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert service.bus.missing(run["id"]) == []
