"""Fixtures for the runs tests: the test's private data dir sharing one demo model per
session, a LocalRunService over the real `python -m trainer`, and helpers that wait for a
run to reach a state. Every trainer process a test started is killed at teardown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui import core
from nicegui.testing import User

from app.services.run_launch import kill_group
from tests.conftest import link_shared_models
from tests.page_probe import record_trainer_pages  # noqa: F401  (autouse)

from .helpers import CPU, ServiceFactory, command_builder, fake_command, watchers_done


@pytest.fixture
def runs_home(tunerdeck_home: Path, shared_models: Path) -> Path:
    """The test's data dir with the session's models folder: the demo model is made once."""
    link_shared_models(tunerdeck_home, shared_models)
    return tunerdeck_home


@pytest.fixture
async def make_service(runs_home: Path) -> AsyncIterator[ServiceFactory]:
    factory = ServiceFactory()
    yield factory
    factory.kill_all()
    await watchers_done(factory.made)
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
    await watchers_done([services.run_service])
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
