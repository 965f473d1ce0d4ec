"""The event sink: every event goes to RUN_DIR/events.jsonl and, when a callback URL is set,
to the server in batches from a background thread (the first event after a quiet spell at
once, then at most one POST per flush interval, so slow runs show each step as it happens and
fast ones do not flood the server). Every event is built by
`tunerdeck_common.events.make_event`, the contract the server parses with.

Guarantees: seq starts at 1 with no gaps; emitting never blocks on the
network and never raises into the training loop; the in-memory send buffer is bounded (when
the receiver is down for long, the oldest unsent events are dropped from the buffer only:
they stay in events.jsonl, from which the server fills gaps). A batch the server refuses
with a 4xx answer (a malformed event, a wrong token) is final: retrying the same bytes cannot
succeed, so it is logged and dropped while connection errors and 5xx answers are retried.

A resumed run continues its sequence after the highest seq in events.jsonl and after the
highest seq the server already has ($TUNERDECK_SEQ_AFTER, set by the server that launched
this run, or `seq_after`): an event can reach the server and never the file (a crash between
the two, a full disk), and a seq the server has seen would be dropped as a duplicate.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tunerdeck_common.events import EVENTS_FILE, EventError, make_event

# 4xx answers that mean "later", not "never".
RETRY_STATUSES = frozenset({408, 425, 429})


class EventSink:
    def __init__(
        self,
        run_dir: Path,
        run_id: str,
        callback_url: str | None = None,
        callback_token: str | None = None,
        *,
        enabled: bool = True,
        # Up to 500 events a POST: at 5,000 events/s, batches of 64 needed 78 POSTs a second,
        # the server answered them too slowly, and delivery fell back to its file poll
        # (every 0.25 s). A server takes up to 5,000 events and 8 MiB per request.
        batch_size: int = 500,
        max_buffer: int = 10_000,
        # 25 ms: a person sees steps as they happen (bench/events.py: p50 near 50 ms at 1,000
        # events/s with 50 ms, 90 ms with 0.2 s), for at most 40 small POSTs a second.
        flush_interval_s: float = 0.025,
        max_backoff_s: float = 10.0,
        request_timeout_s: float = 5.0,
        seq_after: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.enabled = enabled  # False on non-main processes: emit() is a no-op there
        self.path = Path(run_dir) / EVENTS_FILE
        self._seq = 0
        self._lock = threading.Lock()
        self._file = None
        self._write_failed = False
        self.dropped = 0  # events dropped from the send buffer (still in events.jsonl)
        self.refused = 0  # events in batches the server refused with a 4xx (ditto)
        self._refusals_logged: set[int] = set()
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A resumed run continues the same sequence (see the module docstring).
            self._seq = max(_last_seq(self.path), _seq_after(run_id, seq_after))
            self._file = self.path.open("a", encoding="utf-8")
            if self.path.stat().st_size and not _ends_with_newline(self.path):
                self._file.write("\n")  # never glue an event onto a line torn by a crash
        self._url = callback_url if enabled else None
        self._token = callback_token
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()
        self._max_buffer = max_buffer
        self._batch_size = batch_size
        self._flush_interval = flush_interval_s
        self._max_backoff = max_backoff_s
        self._timeout = request_timeout_s
        self._wake = threading.Event()
        # Monotonic time before which the sender waits (the flush interval after a POST, or a
        # back-off): an event emitted after a quiet spell goes out at once, and a busy stream
        # still costs at most one POST per interval.
        self._next_send_at = 0.0
        self._closing = False
        self._thread: threading.Thread | None = None
        if self._url:
            self._thread = threading.Thread(target=self._send_loop, name="event-sink", daemon=True)
            self._thread.start()

    @property
    def last_seq(self) -> int:
        return self._seq

    def emit(self, type_: str, data: dict[str, Any]) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        with self._lock:
            try:
                event = make_event(self.run_id, self._seq + 1, time.time(), type_, data)
            except EventError as exc:
                # A bug in the caller, not a reason to stop training; the server would refuse
                # the whole batch carrying it, so it is reported here and not sent.
                print(f"tunerdeck: not emitting a malformed {type_} event: {exc}", file=sys.stderr)
                return None
            self._seq += 1
            self._write(event)
            if self._url:
                if len(self._buffer) >= self._max_buffer:
                    self._buffer.popleft()
                    self.dropped += 1
                self._buffer.append(event)
        if self._url and (
            type_ in ("lifecycle", "error") or time.monotonic() >= self._next_send_at
        ):
            self._wake.set()  # state changes, and the first event after a quiet spell, go now
        return event

    # Convenience wrappers for the event kinds (tunerdeck_common/events.py has their models).
    def lifecycle(self, state: str, message: str = "") -> None:
        self.emit("lifecycle", {"state": state, "message": message})

    def stage(self, name: str, done: int | None = None, total: int | None = None) -> None:
        """A step of the "starting" phase (e.g. "caching latents", 40, 120), shown beside the
        run's state so step 0 never sits on screen unexplained."""
        data: dict[str, Any] = {"name": name}
        if total is not None:
            data.update(done=done or 0, total=total)
        self.emit("stage", data)

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", {"level": level, "message": message})

    def error(self, message: str, traceback: str) -> None:
        self.emit("error", {"message": message, "traceback": traceback})

    def _write(self, event: dict[str, Any]) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
            self._file.flush()
        except (OSError, ValueError) as exc:  # disk full etc.: report once, keep training
            if not self._write_failed:
                print(f"tunerdeck: cannot write {self.path}: {exc}", file=sys.stderr)
                self._write_failed = True

    def _take_batch(self) -> list[dict[str, Any]]:
        with self._lock:
            n = min(self._batch_size, len(self._buffer))
            return [self._buffer[i] for i in range(n)]

    def _drop_sent(self, batch: list[dict[str, Any]]) -> None:
        with self._lock:
            # Events may have been dropped meanwhile; remove exactly the ones that were sent.
            sent = {e["seq"] for e in batch}
            while self._buffer and self._buffer[0]["seq"] in sent:
                self._buffer.popleft()

    def _post(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps({"run_id": self.run_id, "events": batch}).encode()
        assert self._url is not None  # the sender thread runs only when there is a URL
        req = urllib.request.Request(self._url, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        with urllib.request.urlopen(req, timeout=self._timeout) as resp:
            resp.read()

    def _refuse(self, batch: list[dict[str, Any]], exc: urllib.error.HTTPError) -> None:
        """The server's final no for this batch: drop it (events.jsonl keeps it); log each kind
        of refusal once so a systematic one (a wrong token) does not flood the log."""
        self._drop_sent(batch)
        self.refused += len(batch)
        detail = ""
        with contextlib.suppress(Exception):
            detail = exc.read().decode("utf-8", "replace")[:500]
        with contextlib.suppress(Exception):
            exc.close()
        if exc.code not in self._refusals_logged:
            self._refusals_logged.add(exc.code)
            print(
                f"tunerdeck: the server refused events {batch[0]['seq']}-{batch[-1]['seq']} "
                f"with HTTP {exc.code}; not resending them (they stay in {self.path}): {detail}",
                file=sys.stderr,
                flush=True,
            )

    def _send_loop(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(backoff or self._flush_interval)
            self._wake.clear()
            closing = self._closing
            while True:
                batch = self._take_batch()
                if not batch:
                    backoff = 0.0
                    self._next_send_at = 0.0  # nothing waiting: the next event goes at once
                    break
                try:
                    self._post(batch)
                except urllib.error.HTTPError as exc:
                    if 400 <= exc.code < 500 and exc.code not in RETRY_STATUSES:
                        self._refuse(batch, exc)
                        continue
                    backoff = min(self._max_backoff, max(0.25, backoff * 2))
                    break
                except (OSError, urllib.error.URLError, ValueError):
                    backoff = min(self._max_backoff, max(0.25, backoff * 2))
                    break
                except Exception:  # never let the sender thread die
                    backoff = min(self._max_backoff, max(0.25, backoff * 2))
                    break
                self._drop_sent(batch)
                backoff = 0.0
                self._next_send_at = time.monotonic() + self._flush_interval
                if len(batch) < self._batch_size and not self._closing:
                    break  # a partial batch: wait for the flush interval, not one POST per event
            if backoff:
                self._next_send_at = time.monotonic() + backoff  # new events do not cut it short
            if closing:
                return

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush: try to deliver what is left for up to `timeout_s`, then close the file."""
        if self._thread is not None:
            deadline = time.monotonic() + timeout_s
            while self._buffer and time.monotonic() < deadline:
                self._wake.set()
                time.sleep(0.05)
            self._closing = True
            self._wake.set()
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()) + 0.1)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _last_seq(path: Path) -> int:
    """The highest seq already in `path` (0 if none), so a resumed run has no gaps or repeats."""
    if not path.exists():
        return 0
    last = 0
    with path.open("rb") as f:
        for line in f:
            try:
                last = max(last, int(json.loads(line)["seq"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash
    return last


def _seq_after(run_id: str, given: int | None) -> int:
    """The server's highest seq for this run: `given`, else $TUNERDECK_SEQ_AFTER when the
    environment is the one the server set up for this very run."""
    if given is not None:
        return max(0, given)
    if os.environ.get("TUNERDECK_RUN_ID") != run_id:
        return 0
    try:
        return max(0, int(os.environ.get("TUNERDECK_SEQ_AFTER", "0")))
    except ValueError:
        return 0


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"
