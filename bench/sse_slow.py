"""Server memory held for SSE clients that connect and then never read their stream.

The stream route, EventBus and uvicorn run in a thread of this process; N clients open
`/api/runs/{id}/stream` over raw sockets with a small receive buffer and never read. The
server then publishes E events (each ~1 KB, as a trainer's log events can be) and we read
this process's RSS before the clients connect, after the events (clients still stuck, within
the send timeout), and the number of events each stuck stream still holds.

Run: .venv/bin/python bench/sse_slow.py [--clients 50] [--events 20000] [--events-queue N]
`--events-queue 10000` reproduces the old bound (the bus's whole queue per stream).
(prints figures; with --write, adds them to bench/results/sse_slow.json keyed by the bound)
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import psutil
from fastapi import FastAPI

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from sse import RUN, FileRuns, ServerThread  # noqa: E402

from app.routes import sse  # noqa: E402
from app.services.event_bus import EventBus  # noqa: E402
from tunerdeck_common.events import Event  # noqa: E402


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def stuck_client(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /api/runs/{RUN}/stream HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    return s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--events-queue", type=int, default=sse.EVENTS_QUEUE)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    sse.EVENTS_QUEUE = args.events_queue

    tmp = Path(tempfile.mkdtemp(prefix="sse-slow-"))
    bus = EventBus()
    runs = FileRuns(bus, tmp / "events.jsonl")

    class _Services:
        run_service = runs
        event_bus = bus

    app = FastAPI()
    app.state.services = _Services()
    app.include_router(sse.router)
    server = ServerThread(app)
    with server:
        time.sleep(1)
        before = rss_mb()
        clients = [stuck_client(server.port) for _ in range(args.clients)]
        time.sleep(2)
        text = "x" * 1000

        def publish(start: int, count: int) -> None:
            for seq in range(start, start + count):
                data = {"level": "info", "message": f"{seq} {text}"}
                bus.publish(Event(run_id=RUN, seq=seq, ts=time.time(), type="log", data=data))

        batch = 500
        for start in range(1, args.events + 1, batch):
            server.call(publish, start, min(batch, args.events + 1 - start))
            time.sleep(0.02)
        time.sleep(3)
        after = rss_mb()
        held = [s.queue.qsize() for s in list(bus._subscriptions)]
        result = {
            "clients": args.clients,
            "events": args.events,
            "events_queue": args.events_queue,
            "rss_before_mb": round(before, 1),
            "rss_with_stuck_clients_mb": round(after, 1),
            "growth_mb": round(after - before, 1),
            "per_client_mb": round((after - before) / args.clients, 2),
            "streams_still_subscribed": len(held),
        }
        print(json.dumps(result, indent=1))
        for s in clients:
            s.close()
    if args.write:
        out = REPO / "bench" / "results" / "sse_slow.json"
        known = json.loads(out.read_text()) if out.exists() else {}
        known[f"events_queue={args.events_queue}"] = result
        out.write_text(json.dumps(known, indent=1) + "\n")


if __name__ == "__main__":
    main()
