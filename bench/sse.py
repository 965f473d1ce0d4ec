"""SSE throughput and catch-up, through the real stream route, EventBus and events.jsonl reader.

1. Live: one client on /api/runs/{id}/stream while N events are published on the bus in one
   burst; events per second the client receives (first to last). The per-stream bound is
   raised above N for this: at the default bound a burst that large cuts the client off
   (a `cutoff` event; it resumes with Last-Event-ID), which is the route's contract.
2. Catch-up: 10,000 events were written to events.jsonl while the client was away; it
   reconnects with Last-Event-ID and we time until it has all of them (none missing or twice).
3. The same on the all-runs stream (/api/events/stream, `Last-Event-ID: run:seq`), where the
   catch-up follows the server's publish order: 10,000 events published while away.

The server (uvicorn, loopback port) runs in a thread with its own event loop; the client is
httpx in the main thread, as a separate process would be.

Run: .venv/bin/python bench/sse.py [--live 20000] [--missed 10000]
(prints and writes bench/results/sse.json)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.routes import sse  # noqa: E402
from app.services.event_bus import EventBus  # noqa: E402
from app.services.run_service import RunError, RunInfo  # noqa: E402
from tunerdeck_common.events import Event, event_line, read_events  # noqa: E402

RUN = "bench-run"


class FileRuns:
    """One run whose events live in a real events.jsonl (read as the run service reads it)."""

    def __init__(self, bus: EventBus, path: Path) -> None:
        self.bus = bus
        self.path = path

    def write(self, events: list[Event]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(event_line(e) for e in events)

    async def get_run(self, run_id: str) -> RunInfo:
        if run_id != RUN:
            raise RunError(f"No run {run_id!r}.", 404)
        return RunInfo(id=RUN, state="running", run_dir=str(self.path.parent), created_at=0)

    async def list_runs(self) -> list[RunInfo]:
        return [await self.get_run(RUN)]

    async def events_after(self, run_id: str, seq: int = 0) -> list[Event]:
        return read_events(self.path, seq)


def make_event(seq: int) -> Event:
    data = {"step": seq, "max_steps": 10**9, "loss": 0.123, "lr": 1e-4, "it_per_s": 3.2}
    return Event(run_id=RUN, seq=seq, ts=time.time(), type="progress", data=data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # uvicorn in a thread: no signal handlers
        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self._serve()), daemon=True
        )

    async def _serve(self) -> None:
        await self.server.serve()
        # Stream tasks still waiting (sse-starlette's shutdown watcher): end them with the
        # loop rather than have it report them destroyed while pending.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def call(self, fn: Callable[..., Any], *args: object) -> None:
        self.loop.call_soon_threadsafe(fn, *args)


def read_stream(
    url: str, count: int, headers: dict[str, str], on_open: Callable[[], object] | None = None
) -> list:
    """(seq, arrival time) for the first `count` events of the stream."""
    got: list[tuple[int, float]] = []
    with (
        httpx.Client(timeout=60) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("id:"):
                seq = line[3:].strip().rpartition(":")[2]  # "seq" or "run_id:seq"
                got.append((int(seq), time.perf_counter()))
                if len(got) == 1 and on_open is not None:
                    on_open()
                if len(got) >= count:
                    break
    return got


def _live(server: ServerThread, url: str, runs: FileRuns, bus: EventBus, count: int) -> float:
    """Events per second one client receives while `count` events pour in."""
    # seq 1 is on file so the client gets it at once; then the rest pour in.
    first = make_event(1)
    runs.write([first])
    bus.publish(first)
    live = [make_event(s) for s in range(2, count + 1)]

    def publish_all() -> None:
        runs.write(live)
        for event in live:
            bus.publish(event)

    got = read_stream(url, count, {}, lambda: server.call(publish_all))
    seqs = [s for s, _ in got]
    assert seqs == list(range(1, count + 1)), "live stream lost or repeated events"
    return (count - 1) / (got[-1][1] - got[0][1])


def _catch_up(url: str, runs: FileRuns, seen: int, count: int) -> float:
    """Seconds to receive `count` events that reached the file only."""
    runs.write([make_event(s) for s in range(seen + 1, seen + count + 1)])
    start = time.perf_counter()
    got = read_stream(url, count, {"Last-Event-ID": str(seen)})
    took = time.perf_counter() - start
    assert [s for s, _ in got] == list(range(seen + 1, seen + count + 1))
    return took


def _all_runs_catch_up(
    server: ServerThread, base: str, runs: FileRuns, bus: EventBus, seen: int, count: int
) -> tuple[float, float]:
    """Seconds for the all-runs stream to deliver `count` published events the client missed:
    resumed by time, and exactly in publish order."""
    missed = [make_event(s) for s in range(seen + 1, seen + count + 1)]

    async def publish_missed() -> None:
        bus.mark_seen(RUN, seen)  # step 2's file-only events: on record, as after a restart
        sse.publish_order(bus)  # as the client's all-runs stream had done
        runs.write(missed)
        for event in missed:
            bus.publish(event)

    asyncio.run_coroutine_threadsafe(publish_missed(), server.loop).result(60)
    start = time.perf_counter()
    got = read_stream(base + "/api/events/stream", count, {"Last-Event-ID": f"{RUN}:{seen}"})
    by_time_s = time.perf_counter() - start
    assert [s for s, _ in got] == [e.seq for e in missed]
    # ...the cursor event itself was published before the order was kept: publish-order
    # resume needs it on the bus, so measure from one published event instead.
    anchor = missed[0].seq
    start = time.perf_counter()
    got = read_stream(base + "/api/events/stream", count - 1, {"Last-Event-ID": f"{RUN}:{anchor}"})
    exact_s = time.perf_counter() - start
    assert [s for s, _ in got] == [e.seq for e in missed[1:]]
    return by_time_s, exact_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--live", type=int, default=20_000)
    parser.add_argument("--missed", type=int, default=10_000)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sse-bench-"))
    # Measure throughput, not the cut-off: the live phase publishes every event in one burst,
    # far past the bound a stream may hold unsent (the route's EVENTS_QUEUE, capped by the
    # bus's queue_size), which cuts a client off by design (bench/sse_slow.py measures that).
    sse.EVENTS_QUEUE = args.live + 10
    bus = EventBus(queue_size=args.live + 10)
    runs = FileRuns(bus, tmp / "events.jsonl")

    class _Services:  # only what the stream routes ask for
        run_service = runs
        event_bus = bus

    app = FastAPI()
    app.state.services = _Services()
    app.include_router(sse.router)
    url_path = f"/api/runs/{RUN}/stream"

    server = ServerThread(app)
    with server as base:
        # 1. live
        live_rate = _live(server, base + url_path, runs, bus, args.live)
        # 2. catch-up: the client saw everything so far, then `missed` events reach the file only.
        catch_up_s = _catch_up(base + url_path, runs, args.live, args.missed)
        # 3. all-runs catch-up: the client's last event and the missed ones were published.
        all_runs_s, exact_s = _all_runs_catch_up(
            server, base, runs, bus, args.live + args.missed, args.missed
        )

    results = {
        "live_events": args.live,
        "live_events_per_s": round(live_rate),
        "missed_events": args.missed,
        "catch_up_s": round(catch_up_s, 3),
        "catch_up_events_per_s": round(args.missed / catch_up_s),
        "all_runs_catch_up_by_time_s": round(all_runs_s, 3),
        "all_runs_catch_up_exact_s": round(exact_s, 3),
        "machine": f"{platform.machine()} {platform.python_version()}",
        "note": "server and client on one machine, loopback; server in a thread, client httpx",
    }
    print(f"live: one SSE client received {results['live_events_per_s']:,} events/s")
    print(f"catch-up after {args.missed:,} missed events: {catch_up_s:.3f} s")
    print(
        f"all-runs stream catch-up after {args.missed:,} missed events: "
        f"{exact_s:.3f} s in publish order, {all_runs_s:.3f} s by time"
    )
    out = REPO / "bench" / "results" / "sse.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
