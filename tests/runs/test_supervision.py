"""The run service over the real `python -m trainer` (demo model, a few steps on the CPU):
stop saves a checkpoint, resume continues at the next step, a SIGKILLed trainer is reported
failed with its log tail, a restarted server picks a live run up with no seq gap, and the
queue runs two runs one after the other."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from app.services.run_launch import process_matches
from app.services.run_service import RunError

from ..waiting import wait_until_async
from .helpers import ServiceFactory, demo_config, wait_for_run

pytestmark = pytest.mark.slow


def seqs_of(events: list) -> list[int]:
    return [e.seq for e in events]


async def test_stop_saves_a_checkpoint_and_resume_continues_at_the_next_step(
    make_service: ServiceFactory,
) -> None:
    service = make_service()
    run = await service.start_run(config=demo_config(30))
    await wait_for_run(service, run.id, ("running",), step_at_least=1)
    stopping = await service.stop_run(run.id)
    assert stopping.state == "stopping"
    stopped = await wait_for_run(service, run.id, ("stopped",))
    assert stopped.has_checkpoint and stopped.can_resume
    detail = await service.get_detail(run.id)
    assert detail.checkpoints[-1].step == stopped.step
    assert detail.checkpoints[-1].size_bytes > 0
    assert stopped.step < 30

    await service.resume_run(run.id)
    done = await wait_for_run(service, run.id, ("completed",))
    assert done.step == 30
    events = await service.events_after(run.id, 0)
    assert seqs_of(events) == list(range(1, len(events) + 1))
    steps = [e.data["step"] for e in events if e.type == "progress"]
    assert steps == list(range(1, 31))  # each step once: the resumed process began at stop+1


async def test_a_sigkilled_trainer_is_reported_failed_with_its_log_tail(
    make_service: ServiceFactory,
) -> None:
    service = make_service()
    run = await service.start_run(config=demo_config(100_000))
    await wait_for_run(service, run.id, ("running",), step_at_least=1)
    os.kill(service.processes.running[run.id].pid, signal.SIGKILL)
    failed = await wait_for_run(service, run.id, ("failed",))
    assert failed.exit_code == -signal.SIGKILL
    assert "SIGKILL" in failed.message
    assert failed.log_tail, "the last log lines are kept"
    events = await service.events_after(run.id, 0)
    assert [e.data["state"] for e in events if e.type == "lifecycle"][-1] == "failed"
    assert events[-1].type == "error" and events[-1].data["traceback"]
    # A new run is not blocked by the dead one.
    nxt = await service.start_run(config=demo_config(1))
    assert nxt.state != "queued"


async def test_a_restarted_server_reattaches_a_live_run_with_no_seq_gap(
    make_service: ServiceFactory,
) -> None:
    first = make_service()
    run = await first.start_run(config=demo_config(30))
    watched = await wait_for_run(first, run.id, ("running",), step_at_least=1)
    await first.shutdown()  # the app goes away; the trainer runs on
    events = Path(watched.run_dir) / "events.jsonl"
    await wait_until_async(
        lambda: len(events.read_text().splitlines()) > watched.last_seq + 2,
        what="events written while no server watches",
    )

    second = make_service()
    seen: list[int] = []
    second.bus.listen(lambda item: seen.append(item.seq) if hasattr(item, "seq") else None)
    again = await second.get_run(run.id)
    assert again.state in ("running", "starting", "completed")
    done = await wait_for_run(second, run.id, ("completed",))
    assert done.step == 30
    assert seen == list(range(1, done.last_seq + 1))  # every event once, none missing


async def test_a_run_that_died_while_the_server_was_down_is_marked_failed(
    make_service: ServiceFactory,
) -> None:
    first = make_service()
    run = await first.start_run(config=demo_config(100_000))
    await wait_for_run(first, run.id, ("running",), step_at_least=1)
    pid = first.processes.running[run.id].pid
    await first.shutdown()
    os.killpg(pid, signal.SIGKILL)
    await wait_until_async(lambda: not process_matches(pid, None), what="the trainer to die")

    second = make_service()
    dead = await second.get_run(run.id)
    assert dead.state == "failed"
    assert "not watching" in dead.message
    assert dead.log_tail


async def test_the_queue_runs_two_runs_one_after_the_other(make_service: ServiceFactory) -> None:
    service = make_service()
    a = await service.start_run(config=demo_config(3))
    b = await service.start_run(config=demo_config(3))
    c = await service.start_run(config=demo_config(3))
    assert b.state == "queued" and b.queue_position == 0
    assert c.queue_position == 1
    await service.cancel_queued(c.id)  # never started: gone
    with pytest.raises(RunError):
        await service.get_run(c.id)
    done_a = await wait_for_run(service, a.id, ("completed",))
    done_b = await wait_for_run(service, b.id, ("completed",))
    assert done_b.started_at is not None and done_a.ended_at is not None
    assert done_b.started_at >= done_a.ended_at - 1.0
    assert Path(done_b.run_dir, "checkpoints").is_dir()


async def test_start_is_refused_while_the_config_has_errors(make_service: ServiceFactory) -> None:
    service = make_service()
    with pytest.raises(RunError) as caught:
        await service.start_run(config=demo_config(3, learning_rate=-1))
    assert caught.value.status == 422
    assert any(e.startswith("learning_rate") for e in caught.value.errors)
    assert await service.list_runs() == []
