"""The base-model field picks a model file on the server and shows what the file is (read
from its header, never with torch) before any run starts; a bad file is explained and the
page keeps working."""

from __future__ import annotations

from pathlib import Path

from nicegui.testing import User

from tests.registry.test_model_files import LAYOUTS, write_safetensors
from tests.ui.test_trainer_page import choose, element, page_of


async def test_choosing_a_model_file_shows_its_facts_and_checks_the_family(
    trainer_user: User,
) -> None:
    root = Path(trainer_user.services.prefs.prefs.datasets_root)  # type: ignore[attr-defined]  # services attached by the fixture
    models = root / "models"
    models.mkdir(parents=True)
    file = write_safetensors(models / "anime-xl.safetensors", LAYOUTS["sdxl"])
    (models / "readme.txt").write_text("not offered: not a model file")
    choose(trainer_user, "field-model_family", "sd1x")
    await trainer_user.should_see(marker="row-pretrained_model_name_or_path")
    trainer_user.find(marker="pick-file-pretrained_model_name_or_path").click()
    await trainer_user.should_see(marker="model-file-picker")
    trainer_user.find(marker="folder-models").click()
    await trainer_user.should_see(marker="model-file-anime-xl.safetensors")
    await trainer_user.should_not_see("readme.txt")
    trainer_user.find(marker="model-file-anime-xl.safetensors").click()
    assert element(trainer_user, "field-pretrained_model_name_or_path").value == str(file.resolve())
    facts = element(trainer_user, "facts-pretrained_model_name_or_path")
    assert "Detected: Stable Diffusion XL" in facts.text
    assert "UNet parameters" in facts.text and "v-prediction" in facts.text
    # the family check of validation, shown in the form before any run
    errors = page_of(trainer_user).form.validation().errors
    assert any("set model_family to sdxl" in e.message for e in errors)
    choose(trainer_user, "field-model_family", "sdxl")
    errors = page_of(trainer_user).form.validation().errors
    assert not [e for e in errors if e.path == "pretrained_model_name_or_path"]


async def test_a_text_file_renamed_safetensors_is_explained(trainer_user: User) -> None:
    root = Path(trainer_user.services.prefs.prefs.datasets_root)  # type: ignore[attr-defined]  # services attached by the fixture
    root.mkdir(parents=True, exist_ok=True)
    fake = root / "model.safetensors"
    fake.write_text("404 page not found\n" * 3)
    choose(trainer_user, "field-model_family", "sd1x")
    element(trainer_user, "field-pretrained_model_name_or_path").value = str(fake)
    facts = element(trainer_user, "facts-pretrained_model_name_or_path")
    assert facts.text.startswith("Not usable:") and "not a safetensors file" in facts.text
    # the page still works: another field still edits
    element(trainer_user, "field-pretrained_model_name_or_path").value = ""
    await trainer_user.should_not_see(marker="facts-pretrained_model_name_or_path")
    choose(trainer_user, "field-model_family", "demo")
    await trainer_user.should_not_see(marker="row-pretrained_model_name_or_path")
