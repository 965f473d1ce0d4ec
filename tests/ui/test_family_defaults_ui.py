"""Changing the model family in the form moves unedited fields to its defaults, with a toast."""

from __future__ import annotations

from nicegui.testing import User

from tests.ui.test_trainer_page import choose, element, page_of


async def test_switching_family_applies_its_defaults_and_keeps_user_edits(
    trainer_user: User,
) -> None:
    trainer_user.find(marker="tab-training").click()
    await trainer_user.should_see(marker="field-resolution")
    assert element(trainer_user, "field-resolution").value == 64  # the demo's default
    element(trainer_user, "field-max_train_steps").value = 33  # the user's own edit
    trainer_user.find(marker="tab-model").click()
    choose(trainer_user, "field-model_family", "sdxl")
    await trainer_user.should_see("Resolution 64 → 1024")
    trainer_user.find(marker="tab-training").click()
    assert element(trainer_user, "field-resolution").value == 1024
    assert element(trainer_user, "field-max_train_steps").value == 33
    form = page_of(trainer_user).form
    assert "resolution" not in form.config()  # still a default, not pinned by the switch
    assert form.validation().values["max_train_steps"] == 33
