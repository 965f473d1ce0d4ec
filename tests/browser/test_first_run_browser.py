"""The first run a new user makes: a fresh data dir, nothing edited, Start. The demo family's
own defaults make it short: it completes and its validation image shows in the Monitor.
(How long it takes is measured by bench/first_run.py, not asserted here.)"""

from __future__ import annotations

from pathlib import Path

from nicegui.testing import Screen
from selenium.webdriver.common.by import By

from app.server import configure
from app.services.container import build_services, set_services
from app.services.run_launch import kill_group
from registry.evaluator import PlatformContext
from tests.browser.test_runs_browser import text_of, until

IMAGE_SHOWN = (
    "return [...document.querySelectorAll('img')]"
    ".some(i => i.src.includes('/api/runs/') && i.naturalWidth > 0)"
)


def test_start_on_a_fresh_install_completes_and_shows_a_validation_image(
    screen: Screen, browser_env: dict[str, Path]
) -> None:
    browser_env["home"].rmdir()  # a fresh install: no data dir at all (the fixture's is empty)
    services = build_services(platform=PlatformContext())
    configure(services)
    screen.ui_run_kwargs["storage_secret"] = "browser-test-secret"
    screen.selenium.set_window_size(1280, 900)
    try:
        screen.open("/")
        screen.selenium.find_element(By.CSS_SELECTOR, ".td-start").click()
        screen.open("/monitor")
        until(lambda: screen.selenium.execute_script(IMAGE_SHOWN), "a validation image", 300)
        until(lambda: "completed" in text_of(screen, ".q-badge"), "the run completes", 300)
        (live,) = services.run_service.history.runs.values()
        assert live.record.state == "completed"
        assert live.record.step == live.record.max_steps > 0
    finally:
        for live in services.run_service.history.runs.values():
            if live.record.pid:
                kill_group(live.record.pid)
        set_services(None)
