"""Rows that start hidden (advanced settings, ones a dependency hides) are built only when first
shown: search still reaches them, and they show the form's value of that moment."""

from __future__ import annotations

from nicegui.testing import User

from tests.page_probe import page_of

from .test_trainer_page import element


async def test_an_advanced_field_of_an_unopened_tab_is_found_edited_and_kept(
    trainer_user: User,
) -> None:
    page = page_of(trainer_user)
    assert "optimizer" not in page.rendered and not page.fields.show_advanced
    trainer_user.find(marker="search").type("max grad norm")
    await trainer_user.should_see(marker="hit-max_grad_norm")
    trainer_user.find(marker="hit-max_grad_norm").click()
    assert page.tabs.value == "optimizer"
    await trainer_user.should_see(marker="field-max_grad_norm")
    element(trainer_user, "field-max_grad_norm").value = 0.5
    trainer_user.find(marker="tab-model").click()
    trainer_user.find(marker="tab-optimizer").click()
    assert element(trainer_user, "field-max_grad_norm").value == 0.5
    await trainer_user.open("/")  # a reload: built again from the browser's draft
    trainer_user.find(marker="tab-optimizer").click()
    await trainer_user.should_see(marker="field-max_grad_norm")
    assert element(trainer_user, "field-max_grad_norm").value == 0.5


async def test_a_row_first_shown_after_a_load_shows_the_loaded_value(trainer_user: User) -> None:
    page = page_of(trainer_user)
    trainer_user.find(marker="tab-optimizer").click()
    await trainer_user.should_not_see(marker="field-max_grad_norm")  # advanced: not shown yet
    with trainer_user.client:  # as loading a saved config does
        page.form.replace({"max_grad_norm": 0.25}, "loaded")
    trainer_user.find(marker="show-advanced").click()
    await trainer_user.should_see(marker="field-max_grad_norm")
    assert element(trainer_user, "field-max_grad_norm").value == 0.25


async def test_most_rows_of_the_first_tab_wait_until_shown(trainer_user: User) -> None:
    page = page_of(trainer_user)
    rows = page.fields.controls.values()
    shown = [c for c in rows if c.row.visible]
    assert shown and all(c.built for c in shown)
    assert not any(c.built for c in rows if not c.row.visible)
    trainer_user.find(marker="show-advanced").click()
    assert all(c.built for c in rows if c.row.visible)
