"""The monitor shows sample images as a grid, prompts (rows) by validation steps (columns): a
person reads along a row to see the training take hold. A validation that arrives while the
page is open adds its column."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from nicegui import ElementFilter
from nicegui.testing import User
from PIL import Image

from tunerdeck_common.events import Event

from ..waiting import wait_until_async
from .helpers import demo_config, element, wait_for_run

PROMPTS = [("", "a red circle"), ("beach", "a dog on a beach")]


@pytest.fixture
def trainer_command(fake_trainer_command: Any) -> Any:
    return fake_trainer_command  # the page's logic is under test, not training


def _validation(run_id: str, seq: int, run_dir: Path, step: int) -> Event:
    folder = run_dir / "validation" / f"step-{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for index, (name, prompt) in enumerate(PROMPTS):
        path = folder / f"{index}.png"
        Image.new("RGB", (32, 32), (index * 90, step * 20, 50)).save(path)
        images.append({"path": str(path), "prompt": prompt, "name": name, "seed": 7})
    return Event(
        run_id=run_id,
        seq=seq,
        ts=time.time(),
        type="validation",
        data={"step": step, "images": images},
    )


def _cells(user: User) -> set[str]:
    """The grid's cells by marker, looked for among more rows and steps than these runs make."""
    candidates = [f"grid-cell-{row}-{step}" for row in range(4) for step in range(9)]
    with user:
        return {marker for marker in candidates if any(ElementFilter(marker=marker))}


async def test_the_monitor_draws_prompts_by_steps(app_user: User) -> None:
    service = app_user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    run = await service.start_run(config=demo_config(2))
    run = await wait_for_run(service, run.id, ("completed",))
    run_dir = Path(run.run_dir)
    seq = run.last_seq
    for step in (0, 2):
        seq += 1
        assert service.ingest(_validation(run.id, seq, run_dir, step))

    await app_user.open(f"/monitor/{run.id}")
    await app_user.should_see(marker="samples-grid")
    assert _cells(app_user) == {f"grid-cell-{r}-{s}" for r in (0, 1) for s in (0, 2)}
    assert len(app_user.find(marker="validation-image").elements) == 2 * 2
    await app_user.should_see("beach")  # a library entry's row shows its name
    await app_user.should_see("a dog on a beach")
    await app_user.should_see(marker="grid-step-2")

    seq += 1
    assert service.ingest(_validation(run.id, seq, run_dir, 4))  # arrives while the page is open
    await wait_until_async(lambda: "grid-cell-1-4" in _cells(app_user), 10, what="a step-4 column")
    assert len(app_user.find(marker="validation-image").elements) == 2 * 3
    cell = element(app_user, "grid-cell-1-4")
    (image,) = app_user.find(marker="validation-image").elements & set(cell.descendants())
    assert image.props["src"].startswith(f"/api/runs/{run.id}/file?path=validation")


async def test_a_relative_prompt_library_reaches_the_run_as_validated(
    app_user: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation finds a relative path from the server's folder; the run's copy of the config
    (read by the trainer beside itself, in the run folder) names that same file."""
    from registry.config_io import load_config_file

    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.toml").write_text('beach = "a dog on a beach"\n')
    service = app_user.services.run_service  # type: ignore[attr-defined]  # services attached by the fixture
    config = {**demo_config(2), "user_prompt_library": "prompts.toml", "validation_steps": 1}
    run = await service.start_run(config=config)
    run = await wait_for_run(service, run.id, ("completed",))
    copy = load_config_file(Path(run.run_dir) / "run.toml")
    assert copy["user_prompt_library"] == str(tmp_path / "prompts.toml")
