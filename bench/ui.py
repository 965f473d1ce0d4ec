"""UI speed: time until '/' is interactive in headless chromium (cold and warm server), the
server time to apply one dependency change, and how many element updates it sends.

Run: .venv/bin/python bench/ui.py   (prints figures, writes bench/results/ui.json)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INTERACTIVE_JS = (
    "return !!(window.did_handshake && document.querySelector('[data-field=\"model_family\"]'))"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server did not listen on {port}")


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for arg in ("headless", "no-sandbox", "disable-dev-shm-usage", "window-size=1280,800"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def time_to_interactive(driver, url: str) -> float:
    """Seconds from navigation until the socket handshake is done and the form is on screen."""
    driver.get("about:blank")
    start = time.perf_counter()
    driver.get(url)
    while not driver.execute_script(INTERACTIVE_JS):
        time.sleep(0.01)
    return time.perf_counter() - start


def browser_figures() -> dict[str, float]:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        print("chromium/chromedriver not installed: skipping the browser figures")
        return {}
    tmp = Path(tempfile.mkdtemp(prefix="tunerdeck-bench-"))
    env = {
        **os.environ,
        "TUNERDECK_HOME": str(tmp / "home"),
        "TUNERDECK_WEB_UI_CONFIG": str(tmp / "webui.json"),
    }
    port = free_port()
    driver = browser()
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        server_start = time.perf_counter() - started
        url = f"http://127.0.0.1:{port}/"
        cold = time_to_interactive(driver, url)
        warm = [time_to_interactive(driver, url) for _ in range(7)]
    finally:
        driver.quit()
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "server_start_s": round(server_start, 3),
        "tti_cold_s": round(cold, 3),
        "tti_warm_median_s": round(statistics.median(warm), 3),
        "tti_warm_max_s": round(max(warm), 3),
    }


async def change_figures() -> dict[str, float]:
    """Apply model_type lora<->full in the real page (simulated client) and count updates."""
    from nicegui.testing.user_simulation import user_simulation

    tmp = Path(tempfile.mkdtemp(prefix="tunerdeck-bench-"))
    os.environ["TUNERDECK_HOME"] = str(tmp / "home")
    os.environ["TUNERDECK_WEB_UI_CONFIG"] = str(tmp / "webui.json")
    from nicegui import Client
    from nicegui.storage import Storage

    Storage.path = tmp / "storage"
    from nicegui import app as nicegui_app

    nicegui_app.storage = Storage()
    from app.server import configure
    from app.services.container import build_services
    from registry.evaluator import PlatformContext

    async with user_simulation() as user:
        from app.pages.trainer_page import TrainerPage

        pages: list[TrainerPage] = []
        build = TrainerPage.build

        def recording_build(self: TrainerPage) -> None:  # the page, seen from outside
            pages.append(self)
            build(self)

        TrainerPage.build = recording_build  # type: ignore[method-assign]  # watched from outside
        configure(build_services(platform=PlatformContext()))
        await user.open("/")

        client: Client = user.client
        page = pages[-1]
        select = page.fields.controls["model_type"].control
        counts: list[int] = []
        apply_states = page.fields.apply_states

        def counting(changed: Any) -> int:
            counts.append(apply_states(changed))
            return counts[-1]

        page.fields.apply_states = counting  # type: ignore[method-assign]  # counted from outside
        times, updates, ours = [], [], []
        for i in range(40):
            client.outbox.updates.clear()
            value = "full" if i % 2 == 0 else "lora"
            started = time.perf_counter()
            with client:
                select.value = value  # the same path as a browser's change event
            times.append((time.perf_counter() - started) * 1000)
            updates.append(len(client.outbox.updates))
            ours.append(counts[-1])
        TrainerPage.build = build  # type: ignore[method-assign]  # put back
        elements = len(client.elements)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "change_apply_ms_median": round(statistics.median(times), 3),
        "change_apply_ms_max": round(max(times), 3),
        "element_updates_per_change": statistics.median(updates),
        "dependent_updates_per_change": statistics.median(ours),
        "elements_on_page": elements,
    }


def main() -> None:
    results = {**browser_figures(), **asyncio.run(change_figures())}
    for key, value in results.items():
        print(f"{key:32s} {value}")
    out = ROOT / "bench" / "results" / "ui.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
