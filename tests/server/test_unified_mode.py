"""Unified mode (NiceGUI) bound off loopback with a token, plus `--callback-port`: pages,
REST and streams need the token (the login page sets a cookie once); the second listener
serves only /callbacks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import free_port, wait_answering

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "unified-test-token"


@pytest.fixture
def unified() -> Iterator[tuple[str, str]]:
    # NiceGUI cannot bind port 0 (`ui.run` turns it into 8080): ports found free just before.
    port, callback_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--token",
            TOKEN,
            "--callback-port",
            str(callback_port),
            "--callback-host",
            "127.0.0.1",
        ],
        cwd=ROOT,
        # The test's data dir (tests/conftest.py); NiceGUI treats a process with
        # PYTEST_CURRENT_TEST as its own test harness.
        env={k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url, callbacks = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{callback_port}"
    try:
        wait_answering(proc, f"{url}/login")
        wait_answering(proc, f"{callbacks}/callbacks")
        yield url, callbacks
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_off_loopback_every_route_needs_the_token(unified: tuple[str, str]) -> None:
    url, _ = unified
    for path in ("/api/runs", "/api/events/stream", "/api/hardware"):
        assert httpx.get(url + path).status_code == 401, path
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(url + "/api/runs", headers=bearer).is_success
    # The streams are served here too (a JSON 404 from the route, not NiceGUI's page).
    missing = httpx.get(url + "/api/runs/nope/stream", headers=bearer)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    page = httpx.get(url + "/", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    with httpx.Client(base_url=url) as browser:
        signed_in = browser.post("/login", data={"token": TOKEN, "next": "/"})
        assert signed_in.status_code == 303
        home_page = browser.get("/", headers={"Accept": "text/html"})
        assert home_page.status_code == 200
        assert "tunerdeck" in home_page.text


def test_callback_port_serves_only_callbacks(unified: tuple[str, str]) -> None:
    _, callbacks = unified
    assert httpx.get(callbacks + "/api/runs").status_code == 404
    assert httpx.get(callbacks + "/").status_code == 404
    unknown = httpx.post(
        callbacks + "/callbacks", json={"run_id": "nope", "events": []}, headers={}
    )
    assert unknown.status_code == 401  # as for a wrong token: no run-id oracle
    assert "Unknown run" in unknown.json()["error"]
