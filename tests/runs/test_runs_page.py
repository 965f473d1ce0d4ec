"""The runs page (/runs): the queue a person reorders and cancels, the loss curves of several
runs on one chart, and deleting a run after a confirmation. The trainer is fake_trainer.py:
these tests are about the page, not training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing import User

from app.services.run_service import RunInfo

from ..waiting import wait_until_async
from .helpers import demo_config, element, set_config, wait_for_run


@pytest.fixture
def trainer_command(fake_trainer_command: Callable[..., list[str]]) -> Callable[..., list[str]]:
    return fake_trainer_command


def table_ids(user: User) -> list[str]:
    return [row["id"] for row in element(user, "runs-table").rows]


def queue_text(user: User) -> list[str]:
    """The queue as the person reads it: '#1 <id> · <config>' per waiting run."""
    box = element(user, "queue")
    return [
        label.text
        for label in box.descendants()
        if isinstance(label, ui.label) and label.text.startswith("#")
    ]


def select(user: User, *run_ids: str) -> None:
    """Tick the rows' checkboxes (the table's `selection` event, as the browser sends it)."""
    rows = [row for row in element(user, "runs-table").rows if row["id"] in run_ids]
    user.find(marker="runs-table").trigger(
        "selection", {"added": True, "rows": rows, "keys": list(run_ids)}
    )


async def finished_runs(user: User, *steps: int) -> list[RunInfo]:
    service = user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    runs = [await service.start_run(config=demo_config(n)) for n in steps]
    return [await wait_for_run(service, run.id, ("completed",), timeout=60) for run in runs]


async def test_the_queue_is_shown_reordered_and_cancelled(
    app_user: User, more_users: Callable[[], User]
) -> None:
    service = app_user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    await app_user.open("/")
    set_config(app_user, demo_config(10_000))
    app_user.find(marker="start").click()
    await wait_until_async(
        lambda: "running" in element(app_user, "run-status").text, 240, what="running"
    )
    app_user.find(marker="start").click()  # a run is active: these two wait
    await wait_until_async(
        lambda: "1 queued" in element(app_user, "run-stats").text, 240, what="one queued"
    )
    app_user.find(marker="start").click()
    await wait_until_async(
        lambda: "2 queued" in element(app_user, "run-stats").text, 240, what="two queued"
    )
    active, first, second = [r.id for r in sorted(await service.list_runs(), key=_created)]

    page, other_tab = more_users(), more_users()
    await page.open("/runs")
    await other_tab.open("/runs")
    for user in (page, other_tab):
        assert [t.split()[:2] for t in queue_text(user)] == [["#1", first], ["#2", second]]
        row = next(r for r in element(user, "runs-table").rows if r["id"] == second)
        assert row["state"] == "queued #2"

    page.find(marker=f"up-{second}").click()  # the person moves the later run first
    for user in (page, other_tab):
        await wait_until_async(
            lambda u=user: [t.split()[1] for t in queue_text(u)] == [second, first],
            30,
            what="the new order shows in both tabs",
        )
    assert [r.id for r in await service.queue()] == [second, first]

    page.find(marker=f"cancel-{first}").click()
    for user in (page, other_tab):
        await wait_until_async(
            lambda u=user: [t.split()[1] for t in queue_text(u)] == [second], 30, what="cancelled"
        )
        await wait_until_async(
            lambda u=user: first not in table_ids(u), 30, what="a never-run run is gone"
        )

    await service.stop_run(active)  # the active run ends: the queue's head starts
    await wait_for_run(service, second, ("running",), timeout=60)
    for user in (page, other_tab):
        await wait_until_async(lambda u=user: queue_text(u) == [], 30, what="the queue is empty")
        await user.should_see("Nothing is waiting.")


async def test_loss_curves_of_several_runs_on_one_chart(app_user: User) -> None:
    short, longer = await finished_runs(app_user, 4, 7)
    await app_user.open("/runs")
    await app_user.should_not_see(marker="compare-chart")

    app_user.find(marker="compare-runs").click()  # nothing selected: told what to do
    await app_user.should_see("Select the runs whose loss curves you want to compare.")
    await app_user.should_not_see(marker="compare-chart")

    select(app_user, short.id, longer.id)
    app_user.find(marker="compare-runs").click()
    await app_user.should_see(marker="compare-chart")
    chart = element(app_user, "compare-chart")
    curves = {s["name"]: s["data"] for s in chart.options["series"]}
    assert set(curves) == {short.id, longer.id}  # one smoothed curve per run, named for it
    assert [step for step, _ in curves[short.id]] == [1, 2, 3, 4]
    assert [step for step, _ in curves[longer.id]] == list(range(1, 8))
    assert curves[short.id][0][1] == 1.0  # fake_trainer's loss is 1/step; smoothing starts there
    assert all(
        b < a for (_, a), (_, b) in zip(curves[longer.id], curves[longer.id][1:], strict=False)
    )


async def test_delete_asks_first_and_removes_the_run_and_its_files(
    app_user: User, more_users: Callable[[], User]
) -> None:
    keep, doomed = await finished_runs(app_user, 3, 3)
    page, other_tab = app_user, more_users()
    await page.open("/runs")
    await other_tab.open("/runs")
    assert sorted(table_ids(page)) == sorted([keep.id, doomed.id])

    select(page, doomed.id)
    page.find(marker="delete-runs").click()
    await page.should_see(marker="confirm-delete")
    await page.should_see(doomed.id)
    page.find(marker="cancel-delete").click()  # changed their mind: nothing happens
    await page.should_not_see(marker="confirm-delete")
    assert Path(doomed.run_dir).is_dir() and doomed.id in table_ids(page)

    page.find(marker="delete-runs").click()
    await page.should_see(marker="confirm-delete")
    page.find(marker="confirm-delete-button").click()
    await wait_until_async(lambda: doomed.id not in table_ids(page), 10, what="the row goes")
    assert not Path(doomed.run_dir).exists()
    assert table_ids(page) == [keep.id] and Path(keep.run_dir).is_dir()
    await wait_until_async(
        lambda: table_ids(other_tab) == [keep.id], 10, what="the other tab follows"
    )


async def test_an_active_run_is_not_deleted(app_user: User) -> None:
    service = app_user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    run = await service.start_run(config=demo_config(10_000))
    await wait_for_run(service, run.id, ("running",), timeout=60)
    await app_user.open("/runs")
    select(app_user, run.id)
    app_user.find(marker="delete-runs").click()
    await app_user.should_see(marker="confirm-delete")
    app_user.find(marker="confirm-delete-button").click()
    await app_user.should_see(f"Run {run.id} is running: stop it before deleting it.")
    assert run.id in table_ids(app_user) and Path(run.run_dir).is_dir()


def _created(run: RunInfo) -> float:
    return run.created_at
