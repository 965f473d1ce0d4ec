"""'Run again with this config' on the Runs page: the reproducibility record's config starts a
new run, and a dataset changed since is named before it starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from nicegui.testing import User

from registry.validation import validate_config
from tunerdeck_common import repro

from ..waiting import wait_until_async
from .helpers import demo_config, wait_for_run
from .test_runs_page import select, table_ids


@pytest.fixture
def trainer_command(fake_trainer_command: Callable[..., list[str]]) -> Callable[..., list[str]]:
    return fake_trainer_command


async def test_run_again_names_what_changed_and_starts_the_same_config(
    app_user: User, tmp_path: Path
) -> None:
    service = app_user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    data = Path(app_user.services.prefs.prefs.datasets_root) / "set"  # type: ignore[attr-defined]  # services attached by the fixture
    data.mkdir(parents=True)
    (data / "a.png").write_bytes(b"x")
    first = await service.start_run(config=demo_config(4))
    first = await wait_for_run(service, first.id, ("completed",), timeout=60)
    # What `python -m trainer` writes at start (the fake trainer does not).
    values = validate_config({**demo_config(4), "datasets": [{"path": str(data)}]}).values
    values["output_dir"] = first.run_dir
    repro.write_record(Path(first.run_dir), repro.build_record(values, ["--config", "run.toml"]))
    (data / "b.png").write_bytes(b"y")  # the dataset changes afterwards

    await app_user.open("/runs")
    select(app_user, first.id)
    app_user.find(marker="run-again").click()
    await app_user.should_see(marker="run-again-dialog")
    await app_user.should_see("1 files then, 2 now")
    app_user.find(marker="run-again-start").click()
    await wait_until_async(lambda: len(table_ids(app_user)) == 2, 30, what="a second run")
    runs = await service.list_runs()
    (again,) = [r for r in runs if r.id != first.id]
    again = await wait_for_run(service, again.id, ("completed",), timeout=60)
    assert again.max_steps == 4  # the same config (fake trainer: max_train_steps)
    assert not Path(again.run_dir).is_relative_to(Path(first.run_dir))  # a folder of its own
