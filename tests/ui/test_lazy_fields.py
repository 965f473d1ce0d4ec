"""Rows that start hidden (advanced settings, ones a dependency hides) are built only when first
shown: search still reaches them, and they show the form's value of that moment."""

from __future__ import annotations

from collections.abc import Iterable

from nicegui import ElementFilter, ui
from nicegui.testing import User

from tests.page_probe import page_of

from .test_trainer_page import choose, element, search


async def test_an_advanced_field_of_an_unopened_tab_is_found_edited_and_kept(
    trainer_user: User,
) -> None:
    page = page_of(trainer_user)
    assert "optimizer" not in page.rendered and not page.fields.show_advanced
    search(trainer_user).type("max grad norm")
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
    shown = [c for c in rows if c.shown]
    assert shown and all(c.built for c in shown)
    assert not any(c.built for c in rows if not c.shown)
    trainer_user.find(marker="show-advanced").click()
    assert all(c.built for c in rows if c.shown)


def markers_in_order(
    user: User, container: ui.element, prefix: str, names: Iterable[str]
) -> list[str]:
    """Those of `names` marked `prefix<name>` under `container`, in the order they are laid out."""
    with user:
        marked = {id(e): name for name in names for e in ElementFilter(marker=prefix + name)}
    return [marked[id(e)] for e in container.descendants() if id(e) in marked]


async def test_rows_and_sections_shown_late_take_their_place_in_catalogue_order(
    trainer_user: User,
) -> None:
    page = page_of(trainer_user)
    tab = page.rendered["model"]
    sdxl = next(s for s in page.fields.sections if s.title == "SDXL")
    assert sdxl.card is None  # its fields are hidden: no card yet
    trainer_user.find(marker="show-advanced").click()
    choose(trainer_user, "field-model_family", "flux")  # the last section's card is built
    choose(trainer_user, "field-lora_type", "lycoris")  # its rows go above LoRA alpha's
    choose(trainer_user, "field-model_family", "sdxl")  # its card goes above flow matching's
    await trainer_user.should_see(marker="section-SDXL")
    await trainer_user.should_see(marker="row-lycoris_algo")
    sections = [s for s in page.fields.sections if s.container is tab]
    cards = [s.card for s in sections if s.card is not None]
    assert sdxl.card in cards
    assert [e for e in tab.descendants() if e in cards] == cards  # laid out in catalogue order
    for section in sections:
        if section.card is not None:
            built = [n for n in section.names if page.fields.controls[n].row is not None]
            assert (
                built
                and markers_in_order(trainer_user, section.card, "row-", section.names) == built
            )
