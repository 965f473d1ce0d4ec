"""The trainer page in headless chromium: tabs, a live dependency, a config kept over reload."""

from __future__ import annotations

from pathlib import Path

from nicegui.testing import Screen
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from app.server import configure
from app.services.container import build_services, set_services
from registry.catalogue import FIELDS
from registry.evaluator import PlatformContext


def start(screen: Screen) -> None:
    configure(build_services(platform=PlatformContext()))
    screen.ui_run_kwargs["storage_secret"] = "browser-test-secret"
    screen.selenium.set_window_size(1280, 800)
    screen.open("/")


def row(screen: Screen, name: str) -> WebElement:
    return screen.selenium.find_element(By.CSS_SELECTOR, f'[data-field="{name}"]')


def choose_option(screen: Screen, field: str, value: str) -> None:
    label = next(c.display for c in FIELDS[field].choices if c.value == value)
    row(screen, field).find_element(By.CSS_SELECTOR, ".q-select").click()
    screen.wait(0.3)
    for item in screen.selenium.find_elements(By.CSS_SELECTOR, ".q-menu .q-item"):
        if item.text.strip() == label:
            item.click()
            return
    raise AssertionError(f"option {label!r} not offered for {field}")


def test_page_loads_with_tabs(screen: Screen, browser_env: dict[str, Path]) -> None:
    start(screen)
    for title in ("Model", "Training", "Optimizer", "Validation", "Checkpoints", "Hardware"):
        screen.should_contain(title)
    screen.should_contain("--model_family")
    screen.selenium.save_screenshot(str(browser_env["shots"] / "page.png"))
    set_services(None)


def test_select_change_hides_dependent_field(screen: Screen, browser_env: dict[str, Path]) -> None:
    start(screen)
    assert row(screen, "lora_rank").is_displayed()
    choose_option(screen, "model_type", "full")
    screen.wait(0.5)
    assert not row(screen, "lora_rank").is_displayed()
    screen.selenium.save_screenshot(str(browser_env["shots"] / "full-model.png"))
    choose_option(screen, "model_type", "lora")
    screen.wait(0.5)
    assert row(screen, "lora_rank").is_displayed()
    set_services(None)


def test_saved_config_survives_reload(screen: Screen, browser_env: dict[str, Path]) -> None:
    start(screen)
    screen.click("Training")
    screen.wait(0.5)
    box = row(screen, "max_train_steps").find_element(By.TAG_NAME, "input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("4321")
    screen.wait(0.6)  # the input is debounced
    assert (
        screen.selenium.execute_script("return window.tunerdeckDirty") is True
    )  # leaving asks first
    screen.click("Save as")
    name_box = screen.find_by_css(".q-dialog input")
    name_box.send_keys("browser run")
    dialog_buttons = screen.selenium.find_elements(By.CSS_SELECTOR, ".q-dialog button")
    next(b for b in dialog_buttons if b.text.strip().lower() == "save").click()
    screen.should_contain("Saved 'browser run'")
    assert screen.selenium.execute_script("return window.tunerdeckDirty") is False
    assert (browser_env["home"] / "configs" / "browser run.toml").is_file()

    screen.selenium.refresh()
    screen.wait(1.0)
    screen.should_contain("browser run")
    screen.click("Training")
    screen.wait(0.5)
    box = row(screen, "max_train_steps").find_element(By.TAG_NAME, "input")
    assert box.get_attribute("value") == "4321"
    screen.selenium.save_screenshot(str(browser_env["shots"] / "after-reload.png"))
    set_services(None)
