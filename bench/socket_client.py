"""A NiceGUI page client without a browser, for benches that need many clients on few cores.

`SocketClient.get(url)` loads a page's HTML and connects its socket the way the page's own
script does (the query the server put in the page: client id, implicit handshake), so the
server builds, updates and sends to it exactly as to a browser. It renders nothing: on a
2-core machine five headless browsers take most of the cores, while real users' browsers run
on their own machines. `frames()` returns what arrived since the last call as (receive time
on the time.monotonic() clock, the message as JSON text), like a browser's DevTools log.
"""

from __future__ import annotations

import ast
import json
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

QUERY = re.compile(r"query: (\{.*?\}),\n")  # in the page: createApp(..., {query: {...}, ...})
SOCKET_PATH = "/_nicegui_ws/socket.io"


class SocketClient:
    def __init__(self) -> None:
        self._frames: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._sio: Any = None
        self._tab_id = str(uuid.uuid4())

    def get(self, url: str) -> None:
        """Open the page at `url` (leaving the previous one, as a browser does)."""
        import socketio

        with urllib.request.urlopen(url, timeout=30) as resp:
            html = resp.read().decode()
        found = QUERY.search(html)
        if found is None:
            raise RuntimeError(f"{url}: no socket query in the page")
        try:
            query = json.loads(found.group(1))
        except ValueError:  # the template may print the dict the Python way
            query = ast.literal_eval(found.group(1))
        query |= {"document_id": str(uuid.uuid4()), "tab_id": self._tab_id, "old_tab_id": ""}
        query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
        self.quit()
        sio = socketio.Client(reconnection=False)
        sio.on("*", self._got)
        parts = urllib.parse.urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}?{urllib.parse.urlencode(query)}"
        sio.connect(base, socketio_path=SOCKET_PATH, transports=["websocket"], wait_timeout=10)
        self._sio = sio

    def _got(self, event: str, data: Any = None) -> None:
        with self._lock:
            self._frames.append((time.monotonic(), json.dumps([event, data])))

    def frames(self) -> list[tuple[float, str]]:
        with self._lock:
            got, self._frames = self._frames, []
        return got

    def quit(self) -> None:
        if self._sio is not None:
            self._sio.disconnect()
            self._sio = None
