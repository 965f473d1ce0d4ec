"""Helpers for the server tests: an in-memory run source over the real EventBus, a uvicorn
server on a free loopback port inside the test's event loop, a small SSE reader, and
`python -m app` as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
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
from ..waiting import wait_until, wait_until_async


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

    def info_of(self, run_id: str) -> RunInfo:
        if run_id not in self.events:
            raise RunError(f"No run {run_id!r}.", 404)
        return RunInfo(id=run_id, state="running", run_dir="/nonexistent", created_at=0.0)

    async def list_runs(self) -> list[RunInfo]:
        return [self.info_of(r) for r in self.events]

    async def get_run(self, run_id: str) -> RunInfo:
        return self.info_of(run_id)

    async def events_after(self, run_id: str, seq: int = 0) -> list[Event]:
        self.info_of(run_id)
        return [e for e in self.events[run_id] if e.seq > seq]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """`app` on a loopback port in this event loop (port 0: the OS picks a free one, read back
    from the listening socket); yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # uvicorn in a thread: no signal handlers
    task = asyncio.create_task(server.serve())
    await wait_until_async(
        lambda: server.started or task.done(), timeout=30, what="the test server to listen"
    )
    if task.done():
        task.result()  # it failed to start: show why
    port = server.servers[0].sockets[0].getsockname()[1]
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


def wait_answering(
    proc: subprocess.Popen[Any],
    url: str,
    timeout: float = 120.0,
    output: Callable[[], str] | None = None,
) -> None:
    """Until GET `url` gets any HTTP answer; fails at once, with the output, if `proc` exits."""

    def answers() -> bool:
        if proc.poll() is not None:
            text = output() if output else (proc.stdout.read() if proc.stdout else "")
            raise AssertionError(f"server exited at start:\n{text}")
        try:
            httpx.get(url, timeout=1)
        except httpx.HTTPError:
            return False
        return True

    wait_until(answers, timeout, what=f"{url} to answer", detail=output)


TRAINER_ANNOUNCEMENT = re.compile(rb"tunerdeck trainer server at http://\S+:(\d+)/")


def announced_port(output: bytes) -> int | None:
    """The port a trainer-mode server printed it listens on (it binds before printing)."""
    found = TRAINER_ANNOUNCEMENT.search(output)
    return int(found.group(1)) if found else None


class ServerProcess:
    """`python -m app ARGS` as a subprocess with its own data dir; output goes to a log file
    (shown when it fails to start). Can be stopped and started again on the same port.

    A trainer-mode server is started with `--port 0` and its URL read from the line it prints
    (the port it bound). NiceGUI's modes cannot bind port 0 (`ui.run` turns 0 into 8080), so
    those get a port found free just before.
    """

    def __init__(self, args: list[str], home: Path, *, ready_path: str = "/api/runs") -> None:
        self.args = args
        self.home = home
        self.ready_path = ready_path
        self.log_path = home / "server.log"
        self.port: int | None = None  # known once started; kept for a restart
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "start the server first"
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            # NiceGUI treats a process with this variable as its own test harness.
            **{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
            "TUNERDECK_HOME": str(self.home),
            "TUNERDECK_WEB_UI_CONFIG": str(self.home / "webui.json"),
        }
        port = self.port
        if port is None:
            trainer_mode = "--mode" in self.args and "trainer" in self.args
            port = 0 if trainer_mode else free_port()
        started_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app", *self.args, "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self.proc = proc

        def bound() -> int | None:
            if proc.poll() is not None:
                raise AssertionError(f"server exited at start:\n{self.output()}")
            return announced_port(self.log_path.read_bytes()[started_at:])

        self.port = port or wait_until(
            bound, timeout, what="the server to print its URL", detail=self.output
        )
        wait_answering(proc, self.url + self.ready_path, timeout, output=self.output)

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
