"""The live trainer page of a simulated client, found from outside the app: the
`record_trainer_pages` fixture wraps `TrainerPage.build` for the test's duration.

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
    from app.pages.trainer_page import TrainerPage

_pages: dict[str, TrainerPage] = {}


@pytest.fixture(autouse=True)
def record_trainer_pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    page_class = importlib.import_module("app.pages.trainer_page").TrainerPage
    build = page_class.build

    def recording_build(self: TrainerPage) -> None:
        _pages[ui.context.client.id] = self
        build(self)

    monkeypatch.setattr(page_class, "build", recording_build)
    yield
    _pages.clear()


def page_of(user: User) -> TrainerPage:
    return _pages[user.client.id]


def datasets_tab_of(user: User) -> Any:
    """The datasets tab the client's trainer page rendered (once the tab was opened)."""
    return page_of(user).context_views["datasets"]
