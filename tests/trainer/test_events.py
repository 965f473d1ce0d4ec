"""The event sink: file record, batched POSTs with the bearer token, unreachable receivers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from trainer.events import EventSink


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_callback_never_blocks_or_fails(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/callbacks"  # nothing listens there
    sink = EventSink(tmp_path, "r1", url, "tok", max_buffer=50)
    for i in range(200):
        sink.emit("progress", {"step": i + 1})
    sink.close(timeout_s=0.5)
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, 201))  # the file has every event
    assert sink.dropped >= 150  # the send buffer stayed bounded


def test_batches_reach_the_receiver_with_the_token(tmp_path: Path) -> None:
    received: list[dict] = []
    auth: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            auth.append(self.headers.get("Authorization", ""))
            received.extend(json.loads(body)["events"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sink = EventSink(
            tmp_path, "r2", f"http://127.0.0.1:{server.server_port}/callbacks", "s3cret"
        )
        for i in range(30):
            sink.emit("progress", {"step": i + 1})
        sink.lifecycle("completed")
        sink.close(timeout_s=5)
    finally:
        server.shutdown()
    assert [e["seq"] for e in received] == list(range(1, 32))
    assert len(auth) < 31 and set(auth) == {"Bearer s3cret"}  # batched


def test_receiver_down_then_up_gets_everything_in_order(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/callbacks"
    sink = EventSink(tmp_path, "r3", url, "t", max_backoff_s=0.3)
    for i in range(5):
        sink.emit("log", {"level": "info", "message": str(i)})
    time.sleep(0.5)  # at least one failed attempt
    received: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.extend(e["seq"] for e in json.loads(body)["events"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sink.emit("log", {"level": "info", "message": "late"})
        sink.close(timeout_s=5)
    finally:
        server.shutdown()
    assert received == [1, 2, 3, 4, 5, 6]


def test_a_resumed_run_continues_the_sequence(tmp_path: Path) -> None:
    first = EventSink(tmp_path, "r4")
    first.lifecycle("starting")
    first.lifecycle("stopped")
    first.close()
    with (tmp_path / "events.jsonl").open("a") as f:
        f.write('{"v":1,"seq":')  # a line torn by a crash
    second = EventSink(tmp_path, "r4")
    second.lifecycle("starting")
    second.close()
    good = []
    for line in (tmp_path / "events.jsonl").read_text().splitlines():
        with contextlib.suppress(ValueError):
            good.append(json.loads(line)["seq"])
    assert good == [1, 2, 3]
