"""The live trainer and monitor pages of a simulated client, found from outside the app: the
`record_trainer_pages` fixture wraps `TrainerPage.build` and `MonitorPage.build` for the
test's duration.

A conftest that imports the fixture makes it active for its tests. NiceGUI's test harness
drops page modules after each test, so the class is looked up anew for every test.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from nicegui import ui
from nicegui.testing import User

if TYPE_CHECKING:
    from app.pages.monitor_page import MonitorPage
    from app.pages.trainer_page import TrainerPage

_pages: dict[str, TrainerPage] = {}
_monitors: dict[str, MonitorPage] = {}


@pytest.fixture(autouse=True)
def record_trainer_pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    page_class = importlib.import_module("app.pages.trainer_page").TrainerPage
    build = page_class.build

    def recording_build(self: TrainerPage) -> None:
        _pages[ui.context.client.id] = self
        build(self)

    monitor_class = importlib.import_module("app.pages.monitor_page").MonitorPage
    monitor_build = monitor_class.build

    async def recording_monitor_build(self: MonitorPage) -> None:
        _monitors[ui.context.client.id] = self
        await monitor_build(self)

    monkeypatch.setattr(page_class, "build", recording_build)
    monkeypatch.setattr(monitor_class, "build", recording_monitor_build)
    yield
    _pages.clear()
    _monitors.clear()


def page_of(user: User) -> TrainerPage:
    return _pages[user.client.id]


def monitor_of(user: User) -> MonitorPage:
    """The monitor page the client opened last."""
    return _monitors[user.client.id]


def datasets_tab_of(user: User) -> Any:
    """The datasets tab the client's trainer page rendered (once the tab was opened)."""
    return page_of(user).context_views["datasets"]
