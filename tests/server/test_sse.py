"""The SSE streams: ids, resume with Last-Event-ID (nothing missing, nothing twice), the
all-runs stream, heartbeats, and a slow client cut off with a reason."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.routes import sse
from app.services.event_bus import LogLine

from ..waiting import wait_until_async
from .helpers import MemoryRuns, SSEMessage, collect, progress, sse_messages


async def test_run_stream_sends_history_then_live_events_with_seq_ids(
    stream_url: str, memory_runs: MemoryRuns
) -> None:
    memory_runs.add_run("r1")
    for seq in (1, 2, 3):
        memory_runs.emit(progress("r1", seq))
    got: list[int] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{stream_url}/api/runs/r1/stream") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        async for message in sse_messages(response):
            if message.event == "comment":
                continue
            assert message.id == str(message.json()["seq"])
            got.append(message.json()["seq"])
            if len(got) == 3:  # subscribed by now: these arrive live
                for seq in (4, 5):
                    memory_runs.emit(progress("r1", seq))
            if len(got) == 5:
                break
    assert got == [1, 2, 3, 4, 5]


async def test_resume_with_last_event_id_gets_everything_after_and_nothing_twice(
    stream_url: str, memory_runs: MemoryRuns
) -> None:
    memory_runs.add_run("r1")
    for seq in range(1, 6):
        memory_runs.emit(progress("r1", seq))
    async with httpx.AsyncClient(timeout=10) as client:
        first = await collect(client, f"{stream_url}/api/runs/r1/stream", 2)
        assert [m.id for m in first] == ["1", "2"]
        # Disconnected: events 6..8 happen meanwhile, 7 reaches only the file.
        memory_runs.emit(progress("r1", 6))
        memory_runs.emit(progress("r1", 7), publish=False)
        memory_runs.emit(progress("r1", 8))
        again = await collect(
            client, f"{stream_url}/api/runs/r1/stream", 6, headers={"Last-Event-ID": "2"}
        )
    assert [int(m.id or 0) for m in again] == [3, 4, 5, 6, 7, 8]


async def test_unknown_run_stream_is_404_with_a_message(stream_url: str, memory_runs) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{stream_url}/api/runs/nope/stream")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


async def test_all_runs_stream_ids_and_resume_from_last_event_id(
    stream_url: str, memory_runs: MemoryRuns
) -> None:
    memory_runs.add_run("a")
    memory_runs.add_run("b")
    memory_runs.emit(progress("a", 1, ts=100.0))
    memory_runs.emit(progress("b", 1, ts=101.0))
    url = f"{stream_url}/api/events/stream"
    seen: list[str] = []
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", url, headers={"Last-Event-ID": "a:0"}) as response:
            async for message in sse_messages(response):
                if message.event == "comment":
                    continue
                seen.append(message.id or "")
                if len(seen) == 2:
                    memory_runs.emit(progress("a", 2, ts=102.0))
                    memory_runs.emit(progress("b", 2, ts=103.0))
                if len(seen) == 4:
                    break
        assert seen == ["a:1", "b:1", "a:2", "b:2"]
        # Gone after b:1; three events happen while away (one only on file).
        memory_runs.emit(progress("a", 3, ts=104.0))
        memory_runs.emit(progress("b", 3, ts=105.0), publish=False)
        memory_runs.emit(progress("a", 4, ts=106.0))
        resumed = await collect(client, url, 5, headers={"Last-Event-ID": "b:1"})
    assert [m.id for m in resumed] == ["a:2", "b:2", "a:3", "b:3", "a:4"]


async def test_idle_stream_sends_heartbeats(
    stream_url: str, memory_runs: MemoryRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "PING_S", 0.2)
    memory_runs.add_run("r1")
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{stream_url}/api/runs/r1/stream") as response,
    ):
        async for message in sse_messages(response):
            assert message.event == "comment"
            assert message.comments[0].startswith("ping")
            break


async def test_slow_client_is_cut_off_with_a_reason_and_can_resume(
    stream_url: str, memory_runs: MemoryRuns
) -> None:
    memory_runs.add_run("r1")
    memory_runs.emit(progress("r1", 1))
    async with httpx.AsyncClient(timeout=10) as client:
        url = f"{stream_url}/api/runs/r1/stream"
        async with client.stream("GET", url) as response:
            messages = sse_messages(response)
            first = await anext(messages)
            while first.event == "comment":
                first = await anext(messages)
            assert first.id == "1"
            # The client stops reading while 200 events pour in (bus queue holds 50).
            for seq in range(2, 202):
                memory_runs.emit(progress("r1", seq))
            rest = [m async for m in messages if m.event != "comment"]
        cutoff = rest[-1]
        assert cutoff.event == "cutoff"
        assert "behind" in cutoff.json()["reason"]
        delivered = [int(m.id or 0) for m in rest[:-1]]
        assert delivered == list(range(2, 2 + len(delivered)))
        last = delivered[-1] if delivered else 1
        resumed = await collect(client, url, 201 - last, headers={"Last-Event-ID": str(last)})
    assert [int(m.id or 0) for m in resumed] == list(range(last + 1, 202))


async def test_all_runs_stream_carries_output_lines_only_when_asked(
    stream_url: str, memory_runs: MemoryRuns
) -> None:
    memory_runs.add_run("r1")
    bus = memory_runs.bus

    async def read(query: str, count: int, first_seq: int) -> list[SSEMessage]:
        url = f"{stream_url}/api/events/stream{query}"
        async with httpx.AsyncClient(timeout=10) as client:
            reader = asyncio.create_task(collect(client, url, count))
            await wait_until_async(
                lambda: len(bus.subscriptions) == 1, timeout=10, what="the stream to subscribe"
            )
            bus.publish_line(LogLine("r1", "step 1: loss 0.5", ts=100.0))
            memory_runs.emit(progress("r1", first_seq))
            bus.publish_line(LogLine("r1", "step 2: loss 0.4", ts=101.0))
            memory_runs.emit(progress("r1", first_seq + 1))
            got = await reader
        await wait_until_async(
            lambda: not bus.subscriptions, timeout=10, what="the stream to unsubscribe"
        )
        return got

    with_lines = await read("?logs=true", 4, 1)
    without = await read("", 2, 3)
    lines = [m for m in with_lines if m.event == "log"]
    assert [m.json()["text"] for m in lines] == ["step 1: loss 0.5", "step 2: loss 0.4"]
    assert lines[0].json() == {"run_id": "r1", "text": "step 1: loss 0.5", "ts": 100.0}
    assert all(m.id is None for m in lines), "a line must not move the Last-Event-ID cursor"
    assert [m.id for m in with_lines if m.event == "message"] == ["r1:1", "r1:2"]
    assert [m.id for m in without] == ["r1:3", "r1:4"]


async def test_all_runs_resume_follows_delivery_order_not_timestamps(
    stream_url: str, memory_runs: MemoryRuns
) -> None:
    """Timestamps need not follow delivery: a late batch of run b (older ts) arrives after
    the client's last event; b's newer-ts event arrived before it. Neither is lost or repeated."""
    memory_runs.add_run("a")
    memory_runs.add_run("b")
    url = f"{stream_url}/api/events/stream"
    async with httpx.AsyncClient(timeout=10) as client:
        reader = asyncio.create_task(collect(client, url, 3))
        await wait_until_async(
            lambda: len(memory_runs.bus.subscriptions) == 1,
            timeout=10,
            what="the stream to subscribe",
        )
        memory_runs.emit(progress("a", 1, ts=10.0))
        memory_runs.emit(progress("b", 1, ts=30.0))
        memory_runs.emit(progress("a", 2, ts=20.0))
        first = await reader
        assert [m.id for m in first] == ["a:1", "b:1", "a:2"]
        # Away: b's delayed event (older than a:2), a new one of a, and one of b only on file.
        memory_runs.emit(progress("b", 2, ts=15.0))
        memory_runs.emit(progress("a", 3, ts=40.0))
        memory_runs.emit(progress("b", 3, ts=50.0), publish=False)
        resumed = await collect(client, url, 3, headers={"Last-Event-ID": "a:2"})
    assert [m.id for m in resumed] == ["b:2", "a:3", "b:3"]


async def test_a_stream_too_far_behind_on_output_lines_is_cut_off_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, stream_url: str, memory_runs: MemoryRuns
) -> None:
    monkeypatch.setattr(sse, "LINES_QUEUE", 2)
    memory_runs.add_run("r1")
    bus = memory_runs.bus
    url = f"{stream_url}/api/events/stream?logs=true"
    async with httpx.AsyncClient(timeout=10) as client:
        reader = asyncio.create_task(collect(client, url, 10))
        await wait_until_async(
            lambda: len(bus.subscriptions) == 1, timeout=10, what="the stream to subscribe"
        )
        for n in range(3):  # no await in between: the third line does not fit
            bus.publish_line(LogLine("r1", f"line {n}"))
        got = await reader  # ends: the stream is cut off
    assert got[-1].event == "cutoff"
    assert "output lines behind" in got[-1].json()["reason"]
    assert all(m.event == "log" for m in got[:-1])
