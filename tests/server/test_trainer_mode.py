"""`python -m app --mode trainer`: a FastAPI-only server (no NiceGUI imported) serving the
runs API, the streams and an OpenAPI schema."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import ServerProcess

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
    server = ServerProcess(["--mode", "trainer"], home, ready_path="/api/server")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_trainer_mode_serves_the_api_without_nicegui(trainer_server: str) -> None:
    info = httpx.get(f"{trainer_server}/api/server").json()
    assert info == {"mode": "trainer", "nicegui_loaded": False}
    assert httpx.get(f"{trainer_server}/api/runs").json() == []
    paths = httpx.get(f"{trainer_server}/openapi.json").json()["paths"]
    for path in ("/api/runs", "/api/runs/{run_id}/stream", "/api/events/stream", "/callbacks"):
        assert path in paths
    # No UI here: the root is not a page.
    assert httpx.get(f"{trainer_server}/").status_code == 404
