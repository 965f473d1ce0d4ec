"""Hostile or careless input gets a clear 4xx, never a 500 with a traceback in the log:
JSON nested thousands deep, a config file nested 5,000 deep, out-of-range numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.access import AccessPolicy
from app.services.configs import import_text
from app.services.container import Services
from app.trainer_server import build_trainer_app
from registry.config_io import ConfigFileError

DEEP = 100_000


@pytest.fixture
def app(services: Services) -> FastAPI:
    # A run that slipped through would start this, not a trainer.
    services.run_service.command_builder = lambda *_: [sys.executable, "-c", "pass"]
    return build_trainer_app(services, AccessPolicy(None, "secret"))


@pytest.fixture
async def client(app: FastAPI):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_deeply_nested_json_bodies_are_a_400(client: httpx.AsyncClient) -> None:
    body = "[" * DEEP + "]" * DEEP
    for path in ("/api/runs", "/callbacks"):
        response = await client.post(
            path, content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (path, response.text)
        assert "JSON" in response.json()["error"]


async def test_out_of_range_numbers_are_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/runs", json={"config": {"model_family": "demo", "max_train_steps": 10**30}}
    )
    assert response.status_code == 422
    assert any(e.startswith("max_train_steps: must be at most") for e in response.json()["errors"])
    assert (await client.get("/api/runs")).json() == []


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.toml", "a = " + "[" * 5000 + "]" * 5000),
        ("deep.toml", "a = " + "{b = " * 5000 + "}" * 5000),
        ("deep.json", "[" * 5000 + "]" * 5000),
    ],
)
def test_a_config_import_nested_5000_deep_is_refused_clearly(name: str, text: str) -> None:
    with pytest.raises(ConfigFileError) as refused:
        import_text(text, name)
    assert any("nested too deeply" in e or "not valid" in e for e in refused.value.errors)


async def test_a_10k_character_path_is_a_4xx(client: httpx.AsyncClient, home: Path) -> None:
    (home / "datasets").mkdir(parents=True, exist_ok=True)
    for path in (str(home / "datasets" / ("a" * 10_000)) + ".png", "a/" * 5000 + "x.png"):
        for route in ("/api/datasets/image", "/api/datasets/thumbnail"):
            response = await client.get(route, params={"path": path})
            assert 400 <= response.status_code < 500, (route, response.status_code)
    response = await client.post(
        "/api/runs", json={"config": {"model_family": "demo", "output_dir": "a" * 10_000}}
    )
    assert response.status_code == 422, response.text
    assert "output_dir" in response.json()["error"]


async def test_a_request_that_does_not_fit_its_route_names_the_field(
    client: httpx.AsyncClient,
) -> None:
    not_a_name = await client.post("/api/runs", json={"config_name": 5})
    assert not_a_name.status_code == 422
    assert any(e.startswith("config_name:") for e in not_a_name.json()["errors"])
    typo = await client.post("/api/runs", json={"confg": {"max_train_steps": 10}})
    assert typo.status_code == 422 and "confg" in typo.json()["error"]
    before_the_start = await client.get("/api/runs/any/events", params={"after": -1})
    assert before_the_start.status_code == 422
    assert before_the_start.json()["errors"][0].startswith("after:")
    assert (await client.get("/api/runs")).json() == []
