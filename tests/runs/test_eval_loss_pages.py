"""Eval losses travel from the trainer's events to the server's record, the Monitor's loss
chart (live and from history) and the Runs page (a column, and the comparison chart). The
trainer is fake_trainer.py (its eval loss is 2/step): these tests are about the pages."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nicegui.testing import User

from tests.page_probe import monitor_of

from ..waiting import wait_until_async
from .helpers import demo_config, element, wait_for_run
from .test_runs_page import select


@pytest.fixture
def trainer_command(fake_trainer_command: Callable[..., list[str]]) -> Callable[..., list[str]]:
    return fake_trainer_command


def eval_curve(series: list[dict]) -> list[list[float]]:
    return next(s["data"] for s in series if s["name"] == "eval loss")


async def test_eval_losses_reach_the_monitor_and_the_runs_page(app_user: User) -> None:
    service = app_user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    run = await service.start_run(config=demo_config(8, eval_steps=2))
    await wait_for_run(service, run.id, ("running",), timeout=60)
    await app_user.open(f"/monitor/{run.id}")  # open while it runs: the points arrive live
    page = monitor_of(app_user)
    done = await wait_for_run(service, run.id, ("completed",), timeout=60)
    expected = [[2, 1.0], [4, 0.5], [6, 2 / 6], [8, 0.25]]
    await wait_until_async(
        lambda: eval_curve(page.model.loss_series()) == expected, 10, what="live"
    )
    assert (done.eval_loss, done.best_eval_loss) == (0.25, 0.25)
    detail = await service.get_detail(run.id)
    assert [[p.step, p.loss] for p in detail.evals] == expected

    await app_user.open(f"/monitor/{run.id}")  # from history: the chart is built with them
    assert eval_curve(element(app_user, "loss-chart").options["series"]) == expected

    await app_user.open("/runs")
    (row,) = element(app_user, "runs-table").rows
    assert row["eval_loss"] == "0.2500"
    select(app_user, run.id)
    app_user.find(marker="compare-runs").click()
    await app_user.should_see(marker="compare-chart")
    names = [s["name"] for s in element(app_user, "compare-chart").options["series"]]
    assert names == [run.id, f"{run.id} eval"]
