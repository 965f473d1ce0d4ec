"""'Start from a preset': the diff is shown before applying, Apply sets the preset's fields
and keeps the rest, Undo restores the form exactly."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from tests.ui.test_trainer_page import choose, element, page_of


async def test_preset_shows_the_diff_applies_and_undoes(trainer_user: User) -> None:
    page = page_of(trainer_user)
    with trainer_user:
        page.form.set_value("validation_prompt", "a photo of sks dog")
        page.form.set_value("lora_rank", 4)
    before = page.form.config()

    trainer_user.find(marker="action-preset").click()
    await trainer_user.should_see(marker="preset-dialog")
    choose(trainer_user, "preset-goal", "object")
    choose(trainer_user, "preset-family", "sdxl")
    choose(trainer_user, "preset-memory", 12)
    table = element(trainer_user, "preset-diff")
    assert isinstance(table, ui.table)
    rows = {r["label"]: (r["before"], r["after"]) for r in table.rows}
    assert rows["Model family"] == ("demo", "sdxl")
    assert rows["LoRA rank"] == ("4", "8")
    assert rows["Resolution"] == ("64", "1024")
    assert rows["Optimizer"] == ("adamw", "adamw8bit")
    assert page.form.value("lora_rank") == 4  # nothing applied yet
    estimate = element(trainer_user, "preset-estimate").text
    assert "(of 12 GB)" in estimate and float(estimate.split("~")[1].split()[0]) <= 12

    trainer_user.find(marker="preset-apply").click()
    await trainer_user.should_see(marker="action-undo-preset")
    assert page.form.value("model_family") == "sdxl"
    assert page.form.value("lora_rank") == 8
    assert page.form.value("validation_prompt") == "a photo of sks dog"  # not in the preset
    assert page.form.dirty

    trainer_user.find(marker="action-undo-preset").click()
    await trainer_user.should_not_see(marker="action-undo-preset")
    assert page.form.config() == before


async def test_a_size_that_cannot_work_says_why_and_cannot_be_applied(trainer_user: User) -> None:
    trainer_user.find(marker="action-preset").click()
    choose(trainer_user, "preset-family", "flux")
    choose(trainer_user, "preset-memory", 8)
    await trainer_user.should_see(marker="preset-unavailable")
    assert not element(trainer_user, "preset-apply").enabled
    choose(trainer_user, "preset-memory", 12)
    await trainer_user.should_not_see(marker="preset-unavailable")
    assert element(trainer_user, "preset-apply").enabled
