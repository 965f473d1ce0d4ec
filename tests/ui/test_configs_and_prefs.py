"""Named configs, import of a broken file, and preferences across a restart of the app."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from nicegui import ui
from nicegui.testing import User

from app.server import configure
from app.services.container import Services
from tests.page_probe import page_of


def element(user: User, marker: str) -> ui.element:
    (found,) = user.find(marker=marker).elements
    return found


def more(user: User, action: str) -> None:
    """Click one of the toolbar's "More" actions."""
    user.find(marker="action-more").click()
    user.find(marker=f"action-{action}").click()


async def save_as(user: User, name: str) -> None:
    user.find(marker="action-save-as").click()
    await user.should_see(marker="name-dialog")
    user.find(marker="name-input").clear().type(name)
    user.find(marker="name-submit").click()


async def test_save_as_then_load_restores_values(
    trainer_user: User, ui_paths: dict[str, Path]
) -> None:
    trainer_user.find(marker="tab-training").click()
    element(trainer_user, "field-max_train_steps").value = 777
    await save_as(trainer_user, "my run")
    await trainer_user.should_see("Saved 'my run'")
    assert (ui_paths["configs"] / "my run.toml").is_file()
    await trainer_user.should_not_see(marker="dirty")
    assert element(trainer_user, "config-name").text == "my run"

    trainer_user.find(marker="action-new").click()  # back to the defaults, nothing unsaved yet
    assert element(trainer_user, "field-max_train_steps").value != 777
    assert element(trainer_user, "config-selector").value is None
    element(trainer_user, "field-max_train_steps").value = 5
    await trainer_user.should_see(marker="dirty")
    # Loading over unsaved changes asks first.
    with trainer_user.client:
        element(trainer_user, "config-selector").value = "my run"
    await trainer_user.should_see(marker="confirm-dialog")
    trainer_user.find(marker="confirm").click()
    assert element(trainer_user, "field-max_train_steps").value == 777
    await trainer_user.should_not_see(marker="dirty")


async def test_save_as_refuses_a_bad_name(trainer_user: User, ui_paths: dict[str, Path]) -> None:
    await save_as(trainer_user, "../escape")
    await trainer_user.should_see("is not a usable config name")
    assert not ui_paths["configs"].exists() or not any(ui_paths["configs"].iterdir())


async def test_rename_duplicate_delete(trainer_user: User, ui_paths: dict[str, Path]) -> None:
    await save_as(trainer_user, "first")
    more(trainer_user, "duplicate")
    trainer_user.find(marker="name-input").clear().type("second")
    trainer_user.find(marker="name-submit").click()
    assert sorted(p.stem for p in ui_paths["configs"].glob("*.toml")) == ["first", "second"]
    more(trainer_user, "rename")
    trainer_user.find(marker="name-input").clear().type("renamed")
    trainer_user.find(marker="name-submit").click()
    assert sorted(p.stem for p in ui_paths["configs"].glob("*.toml")) == ["renamed", "second"]
    assert element(trainer_user, "config-name").text == "renamed"
    more(trainer_user, "delete")
    trainer_user.find(marker="confirm").click()
    assert sorted(p.stem for p in ui_paths["configs"].glob("*.toml")) == ["second"]
    await trainer_user.should_see(marker="dirty")  # the values stay, unsaved


async def test_import_of_a_broken_file_is_refused(
    trainer_user: User, ui_paths: dict[str, Path]
) -> None:
    trainer_user.find(marker="tab-training").click()
    element(trainer_user, "field-max_train_steps").value = 321
    await save_as(trainer_user, "kept")
    saved = (ui_paths["configs"] / "kept.toml").read_bytes()

    more(trainer_user, "import")
    await trainer_user.should_see(marker="import-dialog")
    element(trainer_user, "import-text").value = 'max_train_steps = "lots"\nlearning_rate = -1\n'
    trainer_user.find(marker="import-apply").click()
    await trainer_user.should_see(marker="import-errors")
    await trainer_user.should_see("was not imported")
    assert element(trainer_user, "field-max_train_steps").value == 321  # form unchanged
    assert (ui_paths["configs"] / "kept.toml").read_bytes() == saved  # nothing overwritten

    element(trainer_user, "import-text").value = "this is [ not toml"
    trainer_user.find(marker="import-apply").click()
    await trainer_user.should_see(marker="import-errors")
    assert element(trainer_user, "field-max_train_steps").value == 321


async def test_import_of_a_good_file_replaces_the_form(trainer_user: User) -> None:
    more(trainer_user, "import")
    element(trainer_user, "import-format").value = "json"
    element(trainer_user, "import-text").value = '{"max_train_steps": 42, "optimizer": "prodigy"}'
    trainer_user.find(marker="import-apply").click()
    await trainer_user.should_see("Imported pasted.json")
    trainer_user.find(marker="tab-training").click()
    assert element(trainer_user, "field-max_train_steps").value == 42
    await trainer_user.should_see(marker="dirty")


async def test_diff_and_command_lines(trainer_user: User) -> None:
    trainer_user.find(marker="tab-training").click()
    element(trainer_user, "field-max_train_steps").value = 99
    more(trainer_user, "diff")
    await trainer_user.should_see(marker="diff-dialog")
    more(trainer_user, "command-line")
    await trainer_user.should_see(marker="command-python")
    python_line = element(trainer_user, "command-python").content
    assert "python -m trainer" in python_line and "max_train_steps" in python_line
    assert "accelerate launch" in element(trainer_user, "command-accelerate").content


async def test_preferences_persist_across_a_restart(
    user: User, make_services: Callable[[], Services], ui_paths: dict[str, Path]
) -> None:
    configure(make_services())
    await user.open("/")
    user.find(marker="open-prefs").click()
    await user.should_see(marker="prefs-dialog")
    element(user, "prefs-theme").value = "dark"
    element(user, "prefs-datasets-root").value = str(ui_paths["home"] / "my-datasets")
    user.find(marker="prefs-save").click()
    await user.should_see("Preferences saved")
    assert page_of(user).dark.value is True

    # A restart: fresh services read the same file; the new page renders dark at once.
    restarted = make_services()
    assert restarted.prefs.prefs.theme == "dark"
    assert restarted.prefs.prefs.datasets_root == str(ui_paths["home"] / "my-datasets")
    importlib.import_module("app.services.container").set_services(restarted)
    await user.open("/")
    assert page_of(user).dark.value is True


async def test_relative_root_is_refused(trainer_user: User) -> None:
    trainer_user.find(marker="open-prefs").click()
    element(trainer_user, "prefs-output-root").value = "relative/path"
    trainer_user.find(marker="prefs-save").click()
    await trainer_user.should_see("must be an absolute folder path")


async def test_corrupt_preferences_show_a_banner(
    user: User, make_services: Callable[[], Services], ui_paths: dict[str, Path]
) -> None:
    ui_paths["prefs"].write_text("{ not json", encoding="utf-8")
    configure(make_services())
    await user.open("/")
    await user.should_see(marker="prefs-banner")
    await user.should_see("could not be read")
    assert list(ui_paths["prefs"].parent.glob("webui.json.corrupt-*"))


async def test_onboarding_ticks_and_dismisses(trainer_user: User) -> None:
    trainer_user.find(marker="tab-training").click()
    assert element(trainer_user, "onboarding-review_training").value is True
    trainer_user.find(marker="onboarding-dismiss").click()
    await trainer_user.should_not_see(marker="onboarding")
    await trainer_user.open("/")
    await trainer_user.should_not_see(marker="onboarding")
