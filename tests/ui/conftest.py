"""UI tests run the real trainer page in NiceGUI's simulated browser (the `user` fixture).

Every test gets its own data dir, preferences file and configs folder.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from nicegui.testing import User

from app.server import configure
from app.services.container import Services, build_services, set_services
from registry.evaluator import PlatformContext
from tests.page_probe import record_trainer_pages  # noqa: F401  (autouse)


@pytest.fixture
def ui_paths(tunerdeck_home: Path) -> dict[str, Path]:
    """Where the test's private data dir (tests/conftest.py) keeps what the pages write."""
    prefs = Path(os.environ["TUNERDECK_WEB_UI_CONFIG"])
    return {"home": tunerdeck_home, "prefs": prefs, "configs": tunerdeck_home / "configs"}


@pytest.fixture
def make_services(ui_paths: dict[str, Path]) -> Callable[[], Services]:
    def make() -> Services:
        return build_services(platform=PlatformContext(device="cpu", packages=frozenset()))

    return make


@pytest.fixture
async def trainer_user(user: User, make_services: Callable[[], Services]) -> AsyncIterator[User]:
    """A simulated user with the app's pages and routers registered, '/' opened."""
    services = make_services()
    configure(services)
    user.services = services  # type: ignore[attr-defined]  # the fixture attaches the app's services to the User
    await user.open("/")
    yield user
    set_services(None)
