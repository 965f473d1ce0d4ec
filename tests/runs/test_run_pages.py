"""A person drives a demo run from the page (NiceGUI's simulated browser, the real trainer):
start, watch progress, stop (a checkpoint appears), resume to completion; the monitor and the
runs history show the run."""

from __future__ import annotations

import pytest
from nicegui.testing import User

from tests.page_probe import page_of

from ..waiting import wait_until_async
from .helpers import demo_config, element, step_of

pytestmark = pytest.mark.slow


async def test_start_stop_resume_from_the_page(app_user: User) -> None:
    await app_user.open("/")
    page = page_of(app_user)
    with app_user:  # edits made in the page's model, as its widgets would
        for name, value in demo_config(30).items():
            page.form.set_value(name, value)
    assert element(app_user, "start").enabled
    assert not element(app_user, "stop").enabled and not element(app_user, "resume").enabled

    app_user.find(marker="start").click()
    await wait_until_async(
        lambda: "running" in element(app_user, "run-status").text, 240, what="the bar shows running"
    )
    await wait_until_async(lambda: step_of(app_user) >= 2, 240, what="progress moves")
    assert element(app_user, "run-progress").value > 0
    assert "loss" in element(app_user, "run-stats").text
    assert element(app_user, "stop").enabled

    app_user.find(marker="stop").click()
    await wait_until_async(
        lambda: "stopped" in element(app_user, "run-status").text, 240, what="the bar shows stopped"
    )
    stopped_at = step_of(app_user)
    assert 0 < stopped_at < 30
    assert element(app_user, "resume").enabled

    await app_user.open("/monitor")
    await app_user.should_see(marker=f"checkpoint-{stopped_at}")
    await app_user.should_see(marker="loss-chart")
    await app_user.should_see(marker="no-gpu")  # this machine has no NVIDIA GPU: said plainly
    assert element(app_user, "monitor-state").text == "stopped"

    await app_user.open("/")
    app_user.find(marker="resume").click()
    await wait_until_async(
        lambda: "completed" in element(app_user, "run-status").text, 240, what="the run completes"
    )
    assert step_of(app_user) == 30
    assert element(app_user, "run-progress").value == 1.0

    await app_user.open("/runs")
    (row,) = element(app_user, "runs-table").rows
    assert (row["state"], row["steps"]) == ("completed", "30/30")
    assert row["loss"] != "–" and row["duration"] != "–"
