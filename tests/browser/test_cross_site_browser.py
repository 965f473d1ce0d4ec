"""A page on another site, opened in a real chromium, tries to start a run with a text/plain
form POST and to stop one with a `no-cors` fetch against the loopback server (no token):
both are refused, and the run goes on."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nicegui import app as nicegui_app
from nicegui.testing import Screen

from app.access import AccessPolicy
from app.security import install_security
from app.server import configure
from app.services.container import build_services, set_services
from app.services.run_launch import kill_group
from registry.evaluator import PlatformContext

from ..runs.helpers import fake_command
from ..waiting import wait_until

ATTACK_PAGE = """<!doctype html><html><body>
<form id="f" method="post" enctype="text/plain" action="{target}/api/runs" target="sink">
<input name='{{"config": {{"model_family": "demo", "max_train_steps": 5, "x": "' value='"}}}}'>
</form><iframe name="sink" onload="if (window.sent) document.title += ', answered';"></iframe>
<script>
fetch("{target}/api/runs/{run_id}/stop", {{method: "POST", mode: "no-cors"}})
  .then(() => {{ document.title = "fetched"; }}, () => {{ document.title = "fetch failed"; }})
  .finally(() => {{ window.sent = true; document.getElementById("f").submit(); }});
</script></body></html>"""


@contextlib.contextmanager
def foreign_site(page: str) -> Iterator[str]:
    """An HTTP server on another port (another origin) serving `page` at /."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


def test_foreign_page_can_neither_start_nor_stop_runs(
    screen: Screen, browser_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    services = build_services(platform=PlatformContext())
    services.run_service.command_builder = fake_command
    configure(services)
    install_security(nicegui_app, AccessPolicy(None, "browser-test-secret"))  # loopback
    screen.ui_run_kwargs["storage_secret"] = "browser-test-secret"
    screen.allowed_js_errors.append("403 (Forbidden)")  # the refusals themselves
    screen.allowed_js_errors.append("frame-ancestors")  # the refusal may not be framed either
    screen.open("/runs")
    api = httpx.Client(base_url=screen.url, timeout=30)
    try:
        started = api.post(
            "/api/runs", json={"config": {"model_family": "demo", "max_train_steps": 500}}
        )
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        page = ATTACK_PAGE.format(target=screen.url, run_id=run_id)
        with foreign_site(page) as url:
            screen.selenium.get(url)
            # The iframe loads the answer to the form POST: the attack has been made.
            wait_until(
                lambda: screen.selenium.title.endswith(", answered"),
                10,
                what="the attack page's fetch and form POST",
                detail=lambda: f"page title: {screen.selenium.title!r}",
            )
        runs = api.get("/api/runs").json()
        assert [r["id"] for r in runs] == [run_id], "the form POST started a run"
        assert runs[0]["state"] in ("queued", "starting", "running"), runs[0]
    finally:
        api.close()
        for live in services.run_service.history.runs.values():
            if live.record.pid:
                kill_group(live.record.pid)
        set_services(None)
