"""Helpers for the server tests: an in-memory run source over the real EventBus, a uvicorn
server on a free loopback port inside the test's event loop, a small SSE reader, and
`python -m app` as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from app.services.event_bus import EventBus
from app.services.run_service import RunError, RunInfo
from tunerdeck_common.events import Event

from ..demo_run import demo_config  # noqa: F401  (re-exported)


def progress(run_id: str, seq: int, ts: float | None = None) -> Event:
    return Event(
        v=1,
        run_id=run_id,
        seq=seq,
        ts=ts if ts is not None else time.time(),
        type="progress",
        data={"step": seq, "max_steps": 100000, "loss": 0.5, "lr": 1e-4},
    )


class MemoryRuns:
    """Runs whose events are kept in memory (as events.jsonl would keep them): enough of
    the RunService protocol for the streams, with the same bus semantics as the real one."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.events: dict[str, list[Event]] = {}
        self.tokens: dict[str, str] = {}  # run id -> its callback token

    def add_run(self, run_id: str) -> None:
        self.events.setdefault(run_id, [])

    def emit(self, event: Event, *, publish: bool = True) -> None:
        """The trainer wrote `event` (to the file); `publish=False`: no one was listening."""
        self.events[event.run_id].append(event)
        if publish:
            self.bus.publish(event)

    # What /callbacks asks of a run service.
    def known(self, run_id: str) -> bool:
        return run_id in self.events

    def token_of(self, run_id: str) -> str | None:
        return self.tokens.get(run_id)

    def ingest(self, event: Event) -> bool:
        if self.bus.seen(event.run_id, event.seq):
            return False
        self.emit(event)
        return True

    async def ensure_started(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    def _info(self, run_id: str) -> RunInfo:
        if run_id not in self.events:
            raise RunError(f"No run {run_id!r}.", 404)
        return RunInfo(id=run_id, state="running", run_dir="/nonexistent", created_at=0.0)

    async def list_runs(self) -> list[RunInfo]:
        return [self._info(r) for r in self.events]

    async def get_run(self, run_id: str) -> RunInfo:
        return self._info(run_id)

    async def events_after(self, run_id: str, seq: int = 0) -> list[Event]:
        self._info(run_id)
        return [e for e in self.events[run_id] if e.seq > seq]


async def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """`app` on a loopback port in this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # uvicorn in a thread: no signal handlers
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@dataclass
class SSEMessage:
    id: str | None = None
    event: str = "message"
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


async def sse_messages(response: httpx.Response) -> AsyncIterator[SSEMessage]:
    """Parse a text/event-stream response; heartbeat comments come as their own messages."""
    current = SSEMessage()
    async for line in response.aiter_lines():
        if line == "":
            if current.data or current.id is not None or current.event != "message":
                yield current
            current = SSEMessage()
        elif line.startswith(":"):
            yield SSEMessage(event="comment", comments=[line[1:].strip()])
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                current.id = value
            elif name == "event":
                current.event = value
            elif name == "data":
                current.data = value if not current.data else current.data + "\n" + value


async def collect(
    client: httpx.AsyncClient,
    url: str,
    count: int,
    headers: dict[str, str] | None = None,
    *,
    on_open: Any = None,
) -> list[SSEMessage]:
    """The first `count` data/cutoff messages of the stream at `url` (comments skipped)."""
    got: list[SSEMessage] = []
    async with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, response.text
        if on_open is not None:
            on_open()
        async for message in sse_messages(response):
            if message.event == "comment":
                continue
            got.append(message)
            if len(got) >= count or message.event == "cutoff":
                break
    return got


ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """`python -m app ARGS --port P` as a subprocess with its own data dir; output goes to a
    log file (shown when it fails to start). Can be stopped and started again on the port."""

    def __init__(self, args: list[str], home: Path, *, ready_path: str = "/api/runs") -> None:
        self.args = args
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_path = ready_path
        self.log_path = home / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, attempts: int = 600) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            # NiceGUI treats a process with this variable as its own test harness.
            **{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
            "TUNERDECK_HOME": str(self.home),
            "TUNERDECK_WEB_UI_CONFIG": str(self.home / "webui.json"),
        }
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app", *self.args, "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        for _ in range(attempts):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.output()}")
            try:
                httpx.get(self.url + self.ready_path, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server never answered:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
