"""A client that opens an event stream and never reads it holds a bounded number of events
in the server (not the bus's whole queue) and is cut off, to reconnect with Last-Event-ID."""

from __future__ import annotations

import asyncio
import socket

from app.access import AccessPolicy
from app.routes import sse
from app.services.container import Services
from app.services.event_bus import EventBus
from app.trainer_server import build_trainer_app
from tunerdeck_common.events import Event

from ..waiting import wait_until_async
from .helpers import MemoryRuns, served


async def test_a_stream_nobody_reads_is_cut_off_at_its_own_bound(services: Services) -> None:
    bus = EventBus()  # the production queue size
    assert bus.queue_size > 2 * sse.EVENTS_QUEUE
    runs = MemoryRuns(bus)
    runs.add_run("r1")
    services.event_bus, services.run_service = bus, runs
    app = build_trainer_app(services, AccessPolicy(None, "secret"))
    async with served(app) as url:
        port = int(url.rsplit(":", 1)[1])
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.setblocking(False)
        await asyncio.get_running_loop().sock_connect(stuck, ("127.0.0.1", port))
        stuck.send(b"GET /api/runs/r1/stream HTTP/1.1\r\nHost: test\r\n\r\n")
        await wait_until_async(
            lambda: len(bus.subscriptions) == 1, timeout=10, what="the stuck client's stream"
        )
        (subscription,) = bus.subscriptions
        text = "x" * 20_000  # the socket's buffers fill long before the bound
        for seq in range(1, 3 * sse.EVENTS_QUEUE):
            runs.emit(Event(run_id="r1", seq=seq, ts=0.0, type="log", data={"message": text}))
            if seq % 500 == 0:
                # Part of the scenario, not a wait: the producer pauses so the stream writes
                # what the stuck socket still takes.
                await asyncio.sleep(0.01)
        assert subscription.reason is not None and "behind" in subscription.reason
        assert subscription.queue.qsize() <= sse.EVENTS_QUEUE + 1
        assert not bus.subscriptions
        stuck.close()
