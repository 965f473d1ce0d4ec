"""`python -m app --mode trainer`: a FastAPI-only server (no NiceGUI imported) serving the
runs API, the streams and an OpenAPI schema."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_trainer_server_module_does_not_import_nicegui() -> None:
    code = (
        "import sys, app.trainer_server, app.routes.sse, app.security\n"
        "from app.services.container import build_services\n"
        "build_services()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'nicegui'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.fixture
def trainer_server(home: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--mode", "trainer", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "TUNERDECK_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"trainer server exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                httpx.get(f"{url}/api/server", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_trainer_mode_serves_the_api_without_nicegui(trainer_server: str) -> None:
    info = httpx.get(f"{trainer_server}/api/server").json()
    assert info == {"mode": "trainer", "nicegui_loaded": False}
    assert httpx.get(f"{trainer_server}/api/runs").json() == []
    paths = httpx.get(f"{trainer_server}/openapi.json").json()["paths"]
    for path in ("/api/runs", "/api/runs/{run_id}/stream", "/api/events/stream", "/callbacks"):
        assert path in paths
    # No UI here: the root is not a page.
    assert httpx.get(f"{trainer_server}/").status_code == 404
