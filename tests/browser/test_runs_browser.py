"""A demo run driven from headless chromium: start it, watch the progress bar move and a
validation image appear on the monitor, then stop it (the real trainer, a few steps)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nicegui.testing import Screen
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from app.server import configure
from app.services.container import build_services, set_services
from app.services.run_launch import kill_group
from registry.evaluator import PlatformContext
from tests.conftest import link_shared_models
from tests.waiting import wait_until


def type_into(screen: Screen, name: str, value: str) -> None:
    box = screen.selenium.find_element(By.CSS_SELECTOR, f'[data-field="{name}"] input')
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(value)
    screen.wait(0.6)  # the inputs are debounced


def text_of(screen: Screen, css: str) -> str:
    return screen.selenium.find_element(By.CSS_SELECTOR, css).text


def until(check: Callable[[], bool], what: str, timeout: float = 240) -> None:
    def holds() -> bool:
        try:
            return check()
        except (WebDriverException, ValueError, IndexError):  # re-rendered meanwhile
            return False

    wait_until(holds, timeout, what=what, interval=0.2)


def step(screen: Screen) -> int:
    text = text_of(screen, ".td-run-step")  # "step 3/300"
    return int(text.split()[1].split("/")[0]) if text else 0


def test_start_watch_progress_and_a_validation_image_then_stop(
    screen: Screen, browser_env: dict[str, Path], shared_models: Path
) -> None:
    link_shared_models(browser_env["home"], shared_models)
    services = build_services(platform=PlatformContext())
    configure(services)
    screen.ui_run_kwargs["storage_secret"] = "browser-test-secret"
    screen.selenium.set_window_size(1280, 900)
    try:
        screen.open("/")
        screen.click("Training")
        screen.wait(0.5)
        type_into(screen, "max_train_steps", "300")
        type_into(screen, "resolution", "64")
        screen.click("Validation")
        screen.wait(0.5)
        type_into(screen, "validation_steps", "3")
        type_into(screen, "validation_inference_steps", "2")
        screen.selenium.find_element(By.CSS_SELECTOR, ".td-start").click()
        until(lambda: step(screen) >= 1, "the progress bar starts moving")
        first = step(screen)
        until(lambda: step(screen) > first, "the progress bar keeps moving")
        assert "running" in text_of(screen, ".td-run-status")

        screen.open("/monitor")
        until(
            lambda: screen.selenium.execute_script(
                "return [...document.querySelectorAll('img')].some(i => i.src.includes('/api/runs/') && i.naturalWidth > 0)"
            ),
            "a validation image appears",
        )
        screen.should_contain("step 3")
        screen.selenium.save_screenshot(str(browser_env["shots"] / "monitor.png"))

        screen.open("/")
        screen.selenium.find_element(By.CSS_SELECTOR, ".td-stop").click()
        until(lambda: "stopped" in text_of(screen, ".td-run-status"), "the run stops")
        run = services.run_service.history.runs[
            next(iter(services.run_service.history.runs))
        ].record
        assert (Path(run.run_dir) / "checkpoints" / f"checkpoint-{run.step}").is_dir()
    finally:
        for live in services.run_service.history.runs.values():
            if live.record.pid:
                kill_group(live.record.pid)
        set_services(None)
