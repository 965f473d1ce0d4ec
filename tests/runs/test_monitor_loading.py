"""The monitor misses nothing that arrives while it is still reading the run (in webui mode
that read is a round trip to the trainer server)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from nicegui.testing import User

from tunerdeck_common.events import Event

from ..waiting import wait_until_async
from .helpers import demo_config, element, wait_for_run


@pytest.fixture
def trainer_command(fake_trainer_command: Any) -> Any:
    return fake_trainer_command  # the page's logic is under test, not training


async def test_an_event_published_while_the_page_loads_reaches_it(app_user: User) -> None:
    service = app_user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    run = await service.start_run(config=demo_config(2))
    run = await wait_for_run(service, run.id, ("completed",))
    read_detail = service.get_detail

    async def detail_then_a_late_event(run_id: str, include_progress: bool = True) -> Any:
        detail = await read_detail(run_id, include_progress)
        late = Event(
            run_id=run_id,
            seq=detail.run.last_seq + 1,
            ts=time.time(),
            type="log",
            data={"level": "warning", "message": "arrived while the page was loading"},
        )
        service.ingest(late)  # published now, after the read: not in `detail`
        return detail

    service.get_detail = detail_then_a_late_event
    await app_user.open(f"/monitor/{run.id}")
    log_view = element(app_user, "log")
    await wait_until_async(
        lambda: any("arrived while the page was loading" in str(c.text) for c in log_view),
        10,
        what="the late event in the log view",
    )
