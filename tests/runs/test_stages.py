"""The starting phase's stages reach the run bar and the Monitor, with counts as a bar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from nicegui.testing import User

from app.pages.run_bar import stage_view
from trainer.events import EventSink
from tunerdeck_common.events import StageData, read_events

from ..waiting import wait_until_async
from .helpers import demo_config, element, set_config


@pytest.fixture
def trainer_command(
    fake_trainer_command: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., list[str]]:
    monkeypatch.setenv("FAKE_STAGE_S", "0.6")
    return fake_trainer_command


def test_a_stage_event_follows_the_schema(tmp_path: Path) -> None:
    sink = EventSink(tmp_path, "r1")
    sink.stage("loading model")
    sink.stage("caching latents", 3, 12)
    sink.close()
    first, second = read_events(tmp_path / "events.jsonl")
    assert first.type == second.type == "stage"
    assert stage_view(first.data) == ("loading model", None)
    assert stage_view(second.data) == ("caching latents 3/12", 0.25)
    assert isinstance(second.typed(), StageData)
    assert stage_view(None)[0].startswith("starting")


async def test_the_run_bar_and_monitor_show_the_stage_while_starting(
    app_user: User, more_users: Callable[[], User]
) -> None:
    await app_user.open("/")
    set_config(app_user, demo_config(3))
    app_user.find(marker="start").click()
    monitor = more_users()
    await wait_until_async(
        lambda: bool(app_user.services.run_service.history.runs), 10, what="the run"
    )  # type: ignore[attr-defined]  # services attached by the fixture
    (run_id,) = app_user.services.run_service.history.runs  # type: ignore[attr-defined]  # services attached by the fixture
    await monitor.open(f"/monitor/{run_id}")
    await wait_until_async(
        lambda: "caching latents 2/4" in element(app_user, "run-step").text,
        30,
        what="a counted stage",
    )
    assert element(app_user, "run-progress").value == 0.5
    assert "step 0" not in element(app_user, "run-step").text
    await wait_until_async(
        lambda: "caching latents" in element(monitor, "monitor-summary").text,
        30,
        what="monitor stage",
    )
    await wait_until_async(
        lambda: "completed" in element(app_user, "run-status").text, 60, what="done"
    )
    assert element(app_user, "run-step").text == "step 3/3"  # the stage gives way to steps
