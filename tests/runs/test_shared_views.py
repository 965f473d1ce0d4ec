"""Several browser tabs (or people) on one server see the same live state: a run started in one
tab shows its progress in every tab's run bar and in a monitor open elsewhere, and a stop
pressed in another tab reaches them all. The trainer is fake_trainer.py: this is about the
pages, not training."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nicegui.testing import User

from ..waiting import wait_until_async
from .helpers import demo_config, element, set_config, step_of


@pytest.fixture
def trainer_command(fake_trainer_command: Callable[..., list[str]]) -> Callable[..., list[str]]:
    return fake_trainer_command


def bar_state(user: User) -> tuple[str, str, float, str]:
    return (
        element(user, "run-status").text,
        element(user, "run-step").text,
        element(user, "run-progress").value,
        element(user, "run-stats").text,
    )


async def test_every_tab_sees_the_same_run(app_user: User, more_users: Callable[[], User]) -> None:
    starter, other_tab, watcher = app_user, more_users(), more_users()
    await starter.open("/")
    await other_tab.open("/")
    set_config(starter, demo_config(10_000))
    assert element(other_tab, "run-status").text == "Idle: no run yet"

    starter.find(marker="start").click()
    await wait_until_async(
        lambda: "running" in element(other_tab, "run-status").text, 240, what="other tab"
    )
    await wait_until_async(
        lambda: step_of(other_tab) >= 3, 240, what="progress reaches the other tab"
    )
    assert element(other_tab, "stop").enabled  # anyone watching may stop it
    run_id = element(starter, "run-status").text.split()[1].rstrip(":")
    assert run_id in element(other_tab, "run-status").text

    await watcher.open("/monitor")
    assert element(watcher, "monitor-title").text == f"Run {run_id}"
    assert element(watcher, "monitor-state").text == "running"
    seen = step_of(starter)
    await wait_until_async(
        lambda: step_of(starter) > seen, 240, what="the starter's bar keeps moving"
    )
    await wait_until_async(
        lambda: f"step {step_of(starter)}/" in element(watcher, "monitor-summary").text,
        30,
        what="the monitor follows the same steps",
    )

    other_tab.find(marker="stop").click()  # stopped from the other tab
    for user in (starter, other_tab):
        await wait_until_async(
            lambda u=user: "stopped" in element(u, "run-status").text, 240, what="stopped"
        )
    await wait_until_async(
        lambda: element(watcher, "monitor-state").text == "stopped", 240, what="monitor"
    )
    assert bar_state(starter) == bar_state(other_tab)
    stopped_at = step_of(starter)
    assert f"step {stopped_at}/10000" in element(watcher, "monitor-summary").text
    await watcher.should_see(marker=f"checkpoint-{stopped_at}")
    assert element(starter, "resume").enabled and element(other_tab, "resume").enabled
