"""The event schema, the bus (dedupe, gaps, tail, slow subscribers) and run records."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.services.event_bus import EventBus
from state.run_records import RunRecord, RunRecordStore
from tunerdeck_common.events import Event, EventError, parse_event, read_events


def ev(seq: int, run_id: str = "r1", type_: str = "log", **data: object) -> Event:
    payload = data or {"level": "info", "message": f"event {seq}"}
    return Event(run_id=run_id, seq=seq, ts=1.0 + seq, type=type_, data=payload)  # type: ignore[arg-type]  # tests build any event type


def test_malformed_events_are_refused_with_the_reason() -> None:
    with pytest.raises(EventError, match="step"):
        parse_event(
            {
                "v": 1,
                "run_id": "r",
                "seq": 1,
                "ts": 0,
                "type": "progress",
                "data": {"step": "x", "max_steps": 3},
            }
        )
    with pytest.raises(EventError, match="type"):
        parse_event({"v": 1, "run_id": "r", "seq": 1, "ts": 0, "type": "gossip", "data": {}})
    with pytest.raises(EventError, match="seq"):
        parse_event(
            {"v": 1, "run_id": "r", "seq": 0, "ts": 0, "type": "log", "data": {"message": "m"}}
        )
    with pytest.raises(EventError, match="JSON object"):
        parse_event([1, 2])
    ok = parse_event(
        {
            "v": 1,
            "run_id": "r",
            "seq": 1,
            "ts": 0,
            "type": "lifecycle",
            "data": {"state": "running"},
        }
    )
    assert ok.data["state"] == "running"


def test_the_bus_delivers_each_seq_once_and_tracks_gaps() -> None:
    bus = EventBus(tail_size=3)
    got: list[int] = []
    bus.listen(lambda item: got.append(item.seq))  # type: ignore[union-attr]  # only Events are published here
    assert bus.publish(ev(1)) and bus.publish(ev(2))
    assert not bus.publish(ev(2))  # callback + file follower: the second copy is dropped
    assert bus.publish(ev(5))
    assert bus.missing("r1") == [3, 4]
    assert bus.publish(ev(4)) and bus.publish(ev(3))  # filled late, delivered once each
    assert bus.missing("r1") == []
    assert got == [1, 2, 5, 4, 3]
    assert [e.seq for e in bus.tail("r1")] == [5, 4, 3]  # bounded tail
    assert bus.last_seq("r1") == 5


async def test_a_subscriber_that_falls_behind_is_cut_off_with_a_reason() -> None:
    bus = EventBus(queue_size=5)
    sub = bus.subscribe("r1")
    other = bus.subscribe("r2")
    for seq in range(1, 20):
        bus.publish(ev(seq))
    received = [e.seq async for e in sub]
    assert received == [1, 2, 3, 4, 5]
    assert sub.reason and "behind" in sub.reason
    assert other.queue.empty()
    fresh = bus.subscribe("r1", after=17)
    assert [await asyncio.wait_for(fresh.__anext__(), 1) for _ in range(2)] == [ev(18), ev(19)]


def test_events_file_reader_skips_torn_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps(ev(1).model_dump()),
        "not json",
        json.dumps(ev(2).model_dump()),
        json.dumps(ev(1).model_dump()),
    ]
    path.write_text("\n".join(lines) + "\n" + json.dumps(ev(3).model_dump())[:20])  # last line torn
    assert [e.seq for e in read_events(path)] == [1, 2]
    assert [e.seq for e in read_events(path, after=1)] == [2]


def test_run_records_round_trip_and_survive_a_broken_file(tmp_path: Path) -> None:
    store = RunRecordStore(tmp_path)
    store.save(RunRecord(id="a", run_dir="/x", state="running", pid=123, step=4))
    (tmp_path / "b.json").write_text("{broken")
    records = store.load_all()
    assert [(r.id, r.state, r.pid, r.step) for r in records] == [("a", "running", 123, 4)]
    with pytest.raises(ValueError):
        store.path_for("../escape")
    store.delete("a")
    assert store.load_all() == []
