"""Start runs the preflight: findings appear in the run bar's problems panel with their fix;
a blocking one stops the start, a warning does not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from nicegui.testing import User
from PIL import Image

from tests.page_probe import page_of

from ..waiting import wait_until_async
from .helpers import demo_config, element, set_config


@pytest.fixture
def trainer_command(fake_trainer_command: Callable[..., list[str]]) -> Callable[..., list[str]]:
    return fake_trainer_command


async def test_a_blocking_finding_stops_start(app_user: User, tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("x")
    app_user.services.prefs.update(output_root=str(tmp_path / "not-a-folder"))  # type: ignore[attr-defined]  # services attached by the fixture
    await app_user.open("/")
    set_config(app_user, demo_config(3))
    app_user.find(marker="start").click()
    await app_user.should_see(marker="preflight-output")
    await app_user.should_see("Fix: Choose an output_dir")
    assert await app_user.services.run_service.list_runs() == []  # type: ignore[attr-defined]  # services attached by the fixture


async def test_a_warning_is_listed_and_the_run_starts(app_user: User, runs_home: Path) -> None:
    folder = Path(app_user.services.prefs.prefs.datasets_root) / "small"  # type: ignore[attr-defined]  # services attached by the fixture
    folder.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (32, 32), "blue").save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("a blue square")
    await app_user.open("/")
    set_config(app_user, demo_config(3))
    page = page_of(app_user)
    with app_user:
        page.form.set_datasets([{"path": "small"}])
    app_user.find(marker="start").click()
    await app_user.should_see(marker="preflight-small")
    await app_user.should_see("2 of 2 images are smaller than 64 px")
    await wait_until_async(
        lambda: "completed" in element(app_user, "run-status").text, 60, what="runs"
    )
