"""The trainer page, driven like a user would in NiceGUI's simulated browser."""

from __future__ import annotations

from typing import Any

from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction

from registry.catalogue import FIELDS
from tests.page_probe import page_of

__all__ = ["choose", "element", "page_of"]


def element(user: User, marker: str) -> ui.element:
    (found,) = user.find(marker=marker).elements
    return found


def choose(user: User, marker: str, option: str) -> None:
    """Open a select and click one of its options, as a person would."""
    user.find(marker=marker).click()
    user.find(marker=marker).click()  # a second click with no matching target closes it again
    select = element(user, marker)
    select.value = option


async def test_page_shows_tabs_and_the_model_fields(trainer_user: User) -> None:
    for title in ("Model", "Training", "Optimizer", "Validation", "Checkpoints", "Hardware"):
        await trainer_user.should_see(title)
    await trainer_user.should_see(marker="field-model_family")
    await trainer_user.should_see("--model_family")


async def test_select_change_hides_and_shows_dependent_field(trainer_user: User) -> None:
    await trainer_user.should_not_see(marker="row-pretrained_model_name_or_path")  # demo model
    choose(trainer_user, "field-model_family", "sd1x")
    await trainer_user.should_see(marker="row-pretrained_model_name_or_path")
    choose(trainer_user, "field-model_family", "demo")
    await trainer_user.should_not_see(marker="row-pretrained_model_name_or_path")


async def test_only_changed_elements_are_updated(trainer_user: User) -> None:
    page = page_of(trainer_user)
    counts: list[int] = []
    apply_states = page.fields.apply_states

    def counting(changed: Any) -> int:
        counts.append(apply_states(changed))
        return counts[-1]

    page.fields.apply_states = counting  # type: ignore[method-assign]  # counted from outside
    choose(trainer_user, "field-model_type", "full")
    lora_rows = [n for n in page.fields.controls if n.startswith("lora_")]
    assert lora_rows and not any(page.fields.controls[n].shown for n in lora_rows)
    # Every update is a field row or section that really changed, nothing more.
    assert 0 < counts[-1] <= len(page.fields.controls) + len(page.fields.sections)
    trainer_user.find(marker="tab-training").click()
    element(trainer_user, "field-resolution").value = 768  # nothing depends on it
    assert counts[-1] == 0


async def test_disable_shows_its_reason(trainer_user: User) -> None:
    trainer_user.find(marker="tab-validation").click()
    await trainer_user.should_see(marker="field-validation_steps")
    seed = element(trainer_user, "field-num_validation_images")
    assert seed.enabled
    await trainer_user.should_not_see(marker="reason-num_validation_images")
    element(trainer_user, "field-validation_steps").value = 0
    assert not seed.enabled
    await trainer_user.should_see(marker="reason-num_validation_images")
    reason = element(trainer_user, "reason-num_validation_images").text
    assert "validation" in reason.lower()
    element(trainer_user, "field-validation_steps").value = 50
    assert seed.enabled
    await trainer_user.should_not_see(marker="reason-num_validation_images")


async def test_edits_survive_tab_switches_and_reload(trainer_user: User) -> None:
    await trainer_user.should_not_see(marker="dirty")
    trainer_user.find(marker="tab-training").click()
    element(trainer_user, "field-max_train_steps").value = 1234
    await trainer_user.should_see(marker="dirty")
    trainer_user.find(marker="tab-model").click()
    trainer_user.find(marker="tab-training").click()
    assert element(trainer_user, "field-max_train_steps").value == 1234
    await trainer_user.open("/")  # a reload: a new page built from the browser's draft
    trainer_user.find(marker="tab-training").click()
    assert element(trainer_user, "field-max_train_steps").value == 1234
    await trainer_user.should_see(marker="dirty")


async def test_bad_value_shows_inline_error_and_blocks_start(trainer_user: User) -> None:
    trainer_user.find(marker="tab-optimizer").click()
    start = element(trainer_user, "start")
    await trainer_user.should_not_see(marker="problems")
    element(trainer_user, "field-learning_rate").value = -1
    await trainer_user.should_see(marker="error-learning_rate")
    assert element(trainer_user, "error-learning_rate").text
    await trainer_user.should_see(marker="problems")
    await trainer_user.should_see("learning_rate:")
    assert not start.enabled
    await trainer_user.should_see("Start is disabled: 1 problem")
    element(trainer_user, "field-learning_rate").value = None  # emptied box
    await trainer_user.should_see("a value is required")
    element(trainer_user, "field-learning_rate").value = 0.0002
    await trainer_user.should_not_see(marker="error-learning_rate")
    await trainer_user.should_not_see(marker="problems")


def search(user: User) -> UserInteraction[ui.element]:
    """The header's search box, made by its button on first use."""
    if page_of(user).search_box is None:
        user.find(marker="open-search").click()
    return user.find(marker="search")


async def test_search_jumps_to_a_field_on_another_tab(trainer_user: User) -> None:
    page = page_of(trainer_user)
    search(trainer_user).type("learning rate")
    await trainer_user.should_see(marker="hit-learning_rate")
    trainer_user.find(marker="hit-learning_rate").click()
    assert page.tabs.value == "optimizer"
    await trainer_user.should_see(marker="field-learning_rate")
    await trainer_user.should_not_see(marker="search-results")


async def test_search_explains_a_hidden_field(trainer_user: User) -> None:
    search(trainer_user).type("warmup")
    await trainer_user.should_see(marker="hit-lr_warmup_steps")
    await trainer_user.should_see("hidden:")
    trainer_user.find(marker="hit-lr_warmup_steps").click()
    await trainer_user.should_see("is hidden")


async def test_search_finds_the_settings_of_each_dataset(trainer_user: User) -> None:
    page = page_of(trainer_user)
    search(trainer_user).type("caption extension")
    await trainer_user.should_see(marker="hit-datasets.caption_extension")
    await trainer_user.should_see("in each dataset")
    trainer_user.find(marker="hit-datasets.caption_extension").click()
    assert page.tabs.value == "datasets"
    await trainer_user.should_see("Add a dataset to set")  # none yet: says what to do
    trainer_user.find(marker="add-dataset").click()
    await trainer_user.should_see(marker="dataset-0-caption_extension")
    search(trainer_user).clear()
    search(trainer_user).type("caption extension")
    trainer_user.find(marker="hit-datasets.caption_extension").click()
    await trainer_user.should_not_see(marker="search-results")
    field = element(trainer_user, "dataset-0-caption_extension")
    assert "td-highlight" in field.classes  # shown and flashed on the first dataset's card


async def test_one_show_advanced_switch_also_reveals_the_dataset_settings(
    trainer_user: User,
) -> None:
    page = page_of(trainer_user)
    page.tabs.set_value("datasets")
    trainer_user.find(marker="add-dataset").click()
    await trainer_user.should_see(marker="dataset-0-repeats")
    await trainer_user.should_not_see(marker="dataset-0-shuffle_caption")  # advanced
    trainer_user.find(marker="show-advanced").click()
    await trainer_user.should_see(marker="dataset-0-shuffle_caption")
    trainer_user.find(marker="add-dataset").click()  # a new card follows the switch too
    await trainer_user.should_see(marker="dataset-1-shuffle_caption")
    trainer_user.find(marker="show-advanced").click()
    await trainer_user.should_not_see(marker="dataset-1-shuffle_caption")


async def test_why_hidden_lists_hidden_fields(trainer_user: User) -> None:
    trainer_user.find(marker="why-hidden-model").click()
    await trainer_user.should_see(marker="why-hidden")
    await trainer_user.should_see(FIELDS["pretrained_model_name_or_path"].display_label)


async def test_advanced_toggle_is_remembered(trainer_user: User) -> None:
    trainer_user.find(marker="tab-model").click()
    await trainer_user.should_not_see(marker="row-lora_target_modules")
    trainer_user.find(marker="show-advanced").click()
    await trainer_user.should_see(marker="row-lora_target_modules")
    await trainer_user.open("/")
    await trainer_user.should_see(marker="row-lora_target_modules")
