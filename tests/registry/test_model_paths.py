"""Base model and VAE paths the trainer cannot load are refused by validation, with what to
choose instead, before a run starts (not after it tried a Hub download of a file path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.validation import Issue, validate_config


def _model_errors(tmp_path: Path, **paths: str) -> list[Issue]:
    raw = {"model_family": "sd1x", "datasets": [{"path": str(tmp_path)}], **paths}
    return validate_config(raw).errors


def _diffusers_folder(root: Path) -> Path:
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (root / "vae").mkdir()
    (root / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    return root


@pytest.mark.parametrize("name", ["model.safetensors", "my-model"])
def test_a_file_that_is_not_safetensors_is_refused_saying_so(tmp_path: Path, name: str) -> None:
    file = tmp_path / name
    file.write_bytes(b"\0" * 16)
    [issue] = _model_errors(tmp_path, pretrained_model_name_or_path=str(file))
    assert issue.path == "pretrained_model_name_or_path"
    assert issue.kind == "combination"
    assert "not a safetensors file" in issue.message


@pytest.mark.parametrize("name", ["model.ckpt", "model.BIN", "v1-5.pth"])
def test_a_pickle_checkpoint_is_refused_unless_allowed(tmp_path: Path, name: str) -> None:
    file = tmp_path / name
    file.write_bytes(b"\0" * 16)
    [issue] = _model_errors(tmp_path, pretrained_model_name_or_path=str(file))
    assert issue.path == "pretrained_model_name_or_path"
    assert "pickle" in issue.message and "allow_pickle_checkpoints" in issue.message
    assert ".safetensors" in issue.message  # how to convert it
    allowed = _model_errors(
        tmp_path, pretrained_model_name_or_path=str(file), allow_pickle_checkpoints=True
    )
    assert allowed == []


def test_a_missing_checkpoint_file_is_refused_by_its_extension(tmp_path: Path) -> None:
    [issue] = _model_errors(tmp_path, pretrained_model_name_or_path="/models/sd15.safetensors")
    assert issue.path == "pretrained_model_name_or_path" and "no file" in issue.message


def test_a_folder_without_model_index_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "unet").mkdir()
    [issue] = _model_errors(tmp_path, pretrained_model_name_or_path=str(folder))
    assert issue.path == "pretrained_model_name_or_path"
    assert "no model_index.json" in issue.message and "Hub id" in issue.message


def test_a_diffusers_folder_and_hub_ids_pass(tmp_path: Path) -> None:
    folder = _diffusers_folder(tmp_path / "sd15")
    assert _model_errors(tmp_path, pretrained_model_name_or_path=str(folder)) == []
    hub = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert _model_errors(tmp_path, pretrained_model_name_or_path=hub) == []


def test_a_vae_file_that_is_not_safetensors_is_refused(tmp_path: Path) -> None:
    base = str(_diffusers_folder(tmp_path / "sd15"))
    vae = tmp_path / "vae-ft-mse.safetensors"
    vae.write_bytes(b"\0")
    [issue] = _model_errors(
        tmp_path, pretrained_model_name_or_path=base, pretrained_vae_model_name_or_path=str(vae)
    )
    assert issue.path == "pretrained_vae_model_name_or_path"
    assert "not a safetensors file" in issue.message


def test_a_pipeline_folder_as_vae_points_to_its_vae_subfolder(tmp_path: Path) -> None:
    base = _diffusers_folder(tmp_path / "sd15")
    [issue] = _model_errors(
        tmp_path,
        pretrained_model_name_or_path=str(base),
        pretrained_vae_model_name_or_path=str(base),
    )
    assert issue.path == "pretrained_vae_model_name_or_path"
    assert str(base / "vae") in issue.message
    ok = _model_errors(
        tmp_path,
        pretrained_model_name_or_path=str(base),
        pretrained_vae_model_name_or_path=str(base / "vae"),
    )
    assert ok == []
    hub = _model_errors(
        tmp_path,
        pretrained_model_name_or_path=str(base),
        pretrained_vae_model_name_or_path="madebyollin/sdxl-vae-fp16-fix",
    )
    assert hub == []


def test_paths_are_not_judged_for_the_demo_model(tmp_path: Path) -> None:
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"\0")
    result = validate_config(
        {"model_family": "demo", "resolution": 64, "pretrained_model_name_or_path": str(file)}
    )
    assert result.ok  # the field is hidden for the demo model (only an ignored-value warning)
