"""Fixtures for the runs tests: a private data dir per test (sharing one demo model per
session), a LocalRunService over the real `python -m trainer`, and helpers that wait for a
run to reach a state. Every trainer process a test started is killed at teardown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui import core
from nicegui.testing import User

from app.services.run_launch import kill_group
from tests.page_probe import record_trainer_pages  # noqa: F401  (autouse)

from .helpers import CPU, ServiceFactory, command_builder, fake_command


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder for the session: the demo pipeline is generated once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def runs_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_models: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(shared_models, target_is_directory=True)
    monkeypatch.setenv("TUNERDECK_HOME", str(home))
    monkeypatch.setenv("TUNERDECK_WEB_UI_CONFIG", str(tmp_path / "webui.json"))
    return home


@pytest.fixture
async def make_service(runs_home: Path) -> AsyncIterator[ServiceFactory]:
    factory = ServiceFactory()
    yield factory
    factory.kill_all()
    await asyncio.sleep(0.5)  # let the watchers see the exits before the loop closes
    for service in factory.made:
        await service.shutdown()


@pytest.fixture
def trainer_command() -> Callable[[dict[str, Any], Path, bool], list[str]] | None:
    """The trainer the app_user's runs use: the real one (None) unless a test overrides."""
    return command_builder()


@pytest.fixture
def fake_trainer_command(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """Use with app_user for tests of page logic: fake_trainer.py, slow enough (0.2 s a step)
    that a run stays active while the test looks at it."""
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    return fake_command


@pytest.fixture
async def app_user(
    user: User,
    runs_home: Path,
    trainer_command: Callable[[dict[str, Any], Path, bool], list[str]] | None,
) -> AsyncIterator[User]:
    """The real app (pages + routers) in NiceGUI's simulated browser, with a run service."""
    from app.server import configure
    from app.services.container import build_services, set_services

    services = build_services(platform=CPU)
    services.run_service.command_builder = trainer_command or services.run_service.command_builder
    configure(services)
    user.services = services  # type: ignore[attr-defined]  # the fixture attaches the app's services to the User
    yield user
    for live in services.run_service.history.runs.values():
        if live.record.pid:
            kill_group(live.record.pid)
    await asyncio.sleep(0.5)
    await services.run_service.shutdown()
    set_services(None)


@pytest.fixture
async def more_users(app_user: User) -> AsyncIterator[Callable[[], User]]:
    """More browser tabs (or people) on the same server as app_user: same app, same services."""
    clients: list[httpx.AsyncClient] = []

    def make() -> User:
        clients.append(
            httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url="http://test")
        )
        return User(clients[-1])

    yield make
    for client in clients:
        await client.aclose()
