"""The event sink: file record, batched POSTs with the bearer token, unreachable receivers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.waiting import wait_until
from trainer.events import EventSink


def _recording_receiver(posts: list[dict]) -> HTTPServer:
    """A /callbacks stand-in on a free port (not serving yet) that keeps every POST: its events
    and its Authorization header."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            auth = self.headers.get("Authorization", "")
            posts.append({"seqs": [e["seq"] for e in json.loads(body)["events"]], "auth": auth})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return HTTPServer(("127.0.0.1", 0), Handler)


def test_unreachable_callback_never_blocks_or_fails(tmp_path: Path) -> None:
    with socket.socket() as taken:  # bound, never listening: every connection is refused
        taken.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{taken.getsockname()[1]}/callbacks"
        sink = EventSink(tmp_path, "r1", url, "tok", max_buffer=50)
        for i in range(200):
            sink.emit("progress", {"step": i + 1, "max_steps": 1000})
        sink.close(timeout_s=0.5)
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, 201))  # the file has every event
    assert sink.dropped >= 150  # the send buffer stayed bounded


def test_batches_reach_the_receiver_with_the_token(tmp_path: Path) -> None:
    posts: list[dict] = []
    server = _recording_receiver(posts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sink = EventSink(
            tmp_path, "r2", f"http://127.0.0.1:{server.server_port}/callbacks", "s3cret"
        )
        for i in range(30):
            sink.emit("progress", {"step": i + 1, "max_steps": 1000})
        sink.lifecycle("completed")
        sink.close(timeout_s=5)
    finally:
        server.shutdown()
    assert [seq for post in posts for seq in post["seqs"]] == list(range(1, 32))
    auth = [post["auth"] for post in posts]
    assert len(auth) < 31 and set(auth) == {"Bearer s3cret"}  # batched


def test_a_fast_stream_goes_out_in_few_large_posts(tmp_path: Path) -> None:
    """Thousands of events a second must not need a POST per few dozen events: a server that
    answers them too slowly falls behind, and the page then sees steps only at its file poll."""
    posts: list[dict] = []
    server = _recording_receiver(posts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/callbacks"
        sink = EventSink(tmp_path, "r7", url, "t", flush_interval_s=0.5)
        for i in range(2000):
            sink.emit("progress", {"step": i + 1, "max_steps": 2000})
        sink.close(timeout_s=10)
    finally:
        server.shutdown()
    assert [seq for post in posts for seq in post["seqs"]] == list(range(1, 2001))
    assert len(posts) <= 8, [len(post["seqs"]) for post in posts]  # 64 a POST took 32


def test_receiver_down_then_up_gets_everything_in_order(tmp_path: Path) -> None:
    posts: list[dict] = []
    server = _recording_receiver(posts)  # listening, not answering yet
    url = f"http://127.0.0.1:{server.server_port}/callbacks"
    sink = EventSink(tmp_path, "r3", url, "t", max_backoff_s=0.3)
    for i in range(5):
        sink.emit("log", {"level": "info", "message": str(i)})
    server.socket.settimeout(10)
    attempt, _ = server.socket.accept()  # the first attempt meets a receiver going down
    attempt.close()
    threading.Thread(target=server.serve_forever, daemon=True).start()  # and up again
    try:
        sink.emit("log", {"level": "info", "message": "late"})
        sink.close(timeout_s=5)
    finally:
        server.shutdown()
    assert [seq for post in posts for seq in post["seqs"]] == [1, 2, 3, 4, 5, 6]


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


class _PickyReceiver(BaseHTTPRequestHandler):
    """Answers 503 to the very first POST (a server busy starting), 422 to a batch holding a
    "bad" event (as /callbacks does for a malformed one) and 200 otherwise."""

    attempts: list[list[int]] = []
    accepted: list[int] = []

    def do_POST(self) -> None:
        events = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["events"]
        seqs = [e["seq"] for e in events]
        first = not self.attempts
        self.attempts.append(seqs)
        if first:
            status = 503
        elif any(e["data"].get("bad") for e in events):
            status = 422
        else:
            status = 200
            self.accepted.extend(seqs)
        body = json.dumps({"error": "1 malformed event(s) refused"}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_refused_batch_is_dropped_while_server_errors_are_retried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _PickyReceiver.attempts, _PickyReceiver.accepted = [], []
    server = HTTPServer(("127.0.0.1", 0), _PickyReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/callbacks"
    try:
        sink = EventSink(tmp_path, "r5", url, "t", flush_interval_s=0.05, max_backoff_s=0.1)
        for i in range(3):
            sink.emit("progress", {"step": i + 1, "max_steps": 1000})
        # After the 503, the batch came again.
        wait_until(lambda: 3 in _PickyReceiver.accepted, 10, what="the first batch accepted")
        sink.emit("progress", {"step": 4, "max_steps": 1000, "bad": True})
        wait_until(
            lambda: any(4 in a for a in _PickyReceiver.attempts), 10, what="the bad batch sent"
        )
        for i in range(5, 8):
            sink.emit("progress", {"step": i, "max_steps": 1000})
        sink.lifecycle("completed")
        sink.close(timeout_s=5)
    finally:
        server.shutdown()
    attempts = _PickyReceiver.attempts
    # A 5xx answer is retried (the first POST may have left before events 2 and 3 existed).
    assert attempts[1] == [1, 2, 3] and attempts[0] == attempts[1][: len(attempts[0])]
    assert sum(4 in a for a in attempts) == 1  # the refused batch was sent once, not forever
    assert _PickyReceiver.accepted == [1, 2, 3, 5, 6, 7, 8]  # later events still arrive
    assert sink.refused == 1
    lines = [json.loads(x)["seq"] for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert lines == list(range(1, 9))  # the file keeps everything, the refused event too
    err = capsys.readouterr().err
    assert err.count("refused events 4-4 with HTTP 422") == 1


def test_an_event_after_a_quiet_spell_goes_at_once_and_a_burst_waits_for_the_interval(
    tmp_path: Path,
) -> None:
    """A slow run (a step every few seconds) shows each step when it happens; a fast one costs
    one POST per flush interval, not one per event."""
    posts: list[dict] = []
    server = _recording_receiver(posts)

    def seqs() -> list[list[int]]:
        return [post["seqs"] for post in posts]

    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/callbacks"
    try:
        # An interval far longer than the waits below: only the quiet-spell rule can deliver.
        sink = EventSink(tmp_path, "r6", url, "t", flush_interval_s=600)
        sink.emit("progress", {"step": 1, "max_steps": 100})
        wait_until(lambda: seqs() == [[1]], 30, what="the first event sent without waiting")
        for step in range(2, 6):  # a burst right after a POST waits for the interval
            sink.emit("progress", {"step": step, "max_steps": 100})
        assert seqs() == [[1]]
        sink.close(timeout_s=10)  # closing flushes what waits
    finally:
        server.shutdown()
    assert seqs() == [[1], [2, 3, 4, 5]]
