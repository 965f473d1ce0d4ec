"""Stalled-run detection on the server: no step for 10x the median step time (and at least
the minimum wait) notes the stall, with the trainer's last output, in the run's trainer.log,
and the Monitor shows it as a banner."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from nicegui.testing import User

from app.services.event_bus import EventBus
from app.services.stall import STALL_PREFIX, StallClock, StallWatch

from ..waiting import wait_until_async
from .helpers import demo_config, wait_for_run


def test_the_clock_reports_a_stall_once_and_rearms_on_the_next_step() -> None:
    clock = StallClock(factor=10, min_wait_s=30, needed=3)
    for step in range(1, 5):
        clock.step("r", step, 100.0 + step)  # 1 s a step
    assert clock.stalled(104.0 + 29) == []  # 10x median is 10 s, but the floor is 30 s
    (stall,) = clock.stalled(104.0 + 31)
    assert (stall.run_id, stall.step, stall.median_s) == ("r", 4, 1.0)
    assert clock.stalled(104.0 + 60) == []  # said once
    clock.step("r", 5, 170.0)
    assert clock.stalled(170.0 + 31) != []  # the next step re-arms it
    clock.step("r", 1, 300.0)  # a resumed attempt starts its timing over
    assert clock.stalled(1000.0) == []


async def test_a_check_notes_the_stall_with_the_last_output(tmp_path: Path) -> None:
    run = SimpleNamespace(state="running", run_dir=str(tmp_path), log_tail=["step 3", "stuck"])

    class Service:
        async def get_run(self, run_id: str) -> SimpleNamespace:
            return run

    watch = StallWatch(EventBus(), Service(), StallClock(factor=10, min_wait_s=1, needed=2))
    for step in (1, 2, 3):
        watch.clock.step("r", step, 10.0 + step)
    (note,) = await watch.check(30.0)
    assert note.startswith(STALL_PREFIX) and "after step 3" in note and "stuck" in note
    assert (tmp_path / "trainer.log").read_text().strip() == note
    watch.stop()


@pytest.fixture
def trainer_command(
    fake_trainer_command: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., list[str]]:
    monkeypatch.setenv("FAKE_HANG_AT_STEP", "4")
    return fake_trainer_command


async def test_a_trainer_that_stops_emitting_gets_a_stalled_banner(app_user: User) -> None:
    services = app_user.services  # type: ignore[attr-defined]  # the fixture attaches the app's services to the User
    service = services.run_service
    watch = StallWatch(services.event_bus, service, StallClock(factor=10, min_wait_s=1))
    run = await service.start_run(config=demo_config(20))
    await wait_for_run(service, run.id, ("running",), timeout=60, step_at_least=4)
    await app_user.open(f"/monitor/{run.id}")
    notes: list[str] = []

    async def noticed() -> bool:
        notes.extend(await watch.check(time.time()))
        if not notes:
            await app_user.should_see(marker="monitor-title")  # lets the page's timers run
        return bool(notes)

    await wait_until_async(noticed, 30, what="the stall watch to notice the silence")
    assert notes and "after step 4" in notes[0] and "stuck in a collective op" in notes[0]

    def banner() -> bool:
        try:
            return bool(app_user.find(marker="alert-stalled").elements)
        except AssertionError:  # not on the page yet
            return False

    await wait_until_async(banner, 30, what="the stalled banner")
    log = (Path(run.run_dir) / "trainer.log").read_text()
    assert STALL_PREFIX in log  # kept in the run's history
    watch.stop()
