"""Plain page loads that never open the websocket (crawlers, scripts, tabs closed while
loading) leave a bounded number of page clients behind, not one per load; a browser that
does connect keeps its page. (bench/page_memory.py measures the memory this bounds.)"""

from __future__ import annotations

import httpx
import pytest
from nicegui import Client, core
from nicegui.testing import User

from app.pages import client_limits


async def test_plain_page_loads_keep_a_bounded_number_of_clients(
    app_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_limits, "MIN_AGE_S", 0.0)  # no test waits a second per load
    await app_user.open("/")  # a real (simulated) browser, connected
    connected = app_user.client
    transport = httpx.ASGITransport(core.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as plain:
        for path in ["/"] * 40 + ["/runs"] * 10:
            response = await plain.get(path)
            assert response.status_code == 200
    waiting = [c for c in Client.instances.values() if not c.has_socket_connection]
    assert len(waiting) <= client_limits.MAX_WAITING + 1, len(waiting)
    assert connected.id in Client.instances and not connected.is_deleted
    await app_user.should_see("tunerdeck")
