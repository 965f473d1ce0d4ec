"""Real-browser tests: NiceGUI's `screen` fixture driving Debian's chromium + chromedriver.

The root conftest registers only the `user` plugin; the screen fixtures are imported here.
Tests are skipped, with the reason shown, when chromium or chromedriver is not installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

if CHROMIUM and CHROMEDRIVER:
    os.environ.setdefault("CHROME_BINARY_LOCATION", CHROMIUM)
    from nicegui.testing.general_fixtures import nicegui_reset_globals  # noqa: F401
    from nicegui.testing.screen import Screen
    from nicegui.testing.screen_plugin import (  # noqa: F401 - fixtures and hooks for pytest
        nicegui_chrome_options,
        nicegui_remove_all_screenshots,
        pytest_runtest_makereport,
        screen,
    )
    from nicegui.testing.screen_plugin import (
        pytest_configure as _screen_configure,
    )

    def pytest_configure(config: pytest.Config) -> None:
        _screen_configure(config)
        # NiceGUI saves a screenshot per test into ./screenshots; keep them out of the repo.
        Screen.SCREENSHOT_DIR = Path(tempfile.mkdtemp(prefix="tunerdeck-screens-")) / str(
            os.getpid()
        )


@pytest.fixture(scope="session")
def nicegui_driver(nicegui_chrome_options):
    """Debian's chromedriver, named explicitly so selenium never tries to download a driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(
        service=Service(executable_path=CHROMEDRIVER), options=nicegui_chrome_options
    )
    driver.implicitly_wait(Screen.IMPLICIT_WAIT)
    driver.set_page_load_timeout(10)
    yield driver
    driver.quit()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" not in str(item.fspath):
            continue
        item.add_marker(pytest.mark.browser)
        if not (CHROMIUM and CHROMEDRIVER):
            item.add_marker(
                pytest.mark.skip(
                    reason="real-browser test: chromium and chromedriver are not installed"
                )
            )


@pytest.fixture
def browser_env(tunerdeck_home: Path, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """The test's private data dir (tests/conftest.py) and a folder for screenshots."""
    yield {"home": tunerdeck_home, "shots": tmp_path}
