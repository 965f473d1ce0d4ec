"""A long-lived server keeps the events of only the few finished runs looked at last in
memory; the others are read again from events.jsonl when opened, with nothing lost."""

from __future__ import annotations

import pytest

from app.services.run_history import KEEP_LOADED_FINISHED
from app.services.run_service import RunDetail

from ..waiting import wait_until_async
from .helpers import ServiceFactory, demo_config, fake_command, wait_for_run


def steps_of(detail: RunDetail) -> list[int]:
    return [p.step for p in detail.progress]


async def test_old_finished_runs_are_let_go_and_read_again_when_opened(
    make_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_STEP_S", "0.02")
    service = make_service()
    service.command_builder = fake_command
    runs = [await service.start_run(config=demo_config(5)) for _ in range(KEEP_LOADED_FINISHED + 2)]
    for run in runs:
        await wait_for_run(service, run.id, ("completed",))
    # The `completed` event comes just before the trainer exits; a live trainer's run is kept.
    await wait_until_async(lambda: not service.processes.running, 60, what="every trainer exited")
    first = await service.get_detail(runs[0].id)
    assert steps_of(first) == [1, 2, 3, 4, 5]
    for run in runs[1:]:
        await service.get_detail(run.id)
    let_go = service.history.runs[runs[0].id]
    assert not let_go.loaded and len(let_go.progress) == 0  # not held in memory any more
    assert sum(live.loaded for live in service.history.runs.values()) == KEEP_LOADED_FINISHED
    again = await service.get_detail(runs[0].id)
    assert again.progress == first.progress
    assert again.checkpoints == first.checkpoints
    assert [e["message"] for e in again.logs] == [e["message"] for e in first.logs]
    assert (await service.get_run(runs[0].id)).state == "completed"


async def test_a_run_let_go_resumes_with_its_whole_history(
    make_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    service = make_service()
    service.history.keep_finished = 0  # let go at once
    service.command_builder = fake_command
    run = await service.start_run(config=demo_config(12))
    await wait_for_run(service, run.id, ("running",), step_at_least=2)
    await service.stop_run(run.id)
    stopped = await wait_for_run(service, run.id, ("stopped",))
    await wait_until_async(lambda: not service.processes.running, 60, what="the trainer exited")
    assert not service.history.runs[run.id].loaded
    await service.resume_run(run.id)
    running = await wait_for_run(service, run.id, ("running",), step_at_least=stopped.step + 2)
    live_detail = await service.get_detail(run.id)  # while the resumed attempt trains
    assert steps_of(live_detail)[: running.step] == list(range(1, running.step + 1))
    done = await wait_for_run(service, run.id, ("completed",))
    assert done.step == 12
    detail = await service.get_detail(run.id)
    assert steps_of(detail) == list(range(1, 13))  # the first attempt's steps, then the rest
    assert stopped.step in steps_of(detail)
    seqs = [e.seq for e in await service.events_after(run.id, 0)]
    assert seqs == list(range(1, len(seqs) + 1))
