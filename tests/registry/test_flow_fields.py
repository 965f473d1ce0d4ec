"""The flow-matching families in the catalogue: their fields show only for them, the SD-only
fields hide for them with the reason, and the trainer's --help lists them."""

from __future__ import annotations

import pytest

from registry.evaluator import PlatformContext, evaluate

CPU = PlatformContext("cpu")
FLOW_FIELDS = ["weighting_scheme", "flow_shift", "t5_max_length"]
SD_ONLY = [
    "snr_gamma",
    "prediction_type",
    "noise_offset",
    "input_perturbation",
    "min_timestep",
    "max_timestep",
    "validation_scheduler",
    "validation_guidance_rescale",
]


def test_flux_shows_its_fields_and_hides_the_sd_ones() -> None:
    states = evaluate({"model_family": "flux", "pretrained_model_name_or_path": "/m"}, CPU)
    for name in [*FLOW_FIELDS, "flux_guidance_value", "logit_mean", "logit_std"]:
        assert states[name].active, name
    assert not states["sd3_drop_t5"].visible
    assert not states["mode_scale"].visible  # only with weighting_scheme = mode
    for name in SD_ONLY:
        assert not states[name].visible, name
        assert states[name].reason == ("only for the demo model, SD 1.x, SD 2.x or SDXL models"), (
            name
        )
    assert not states["validation_negative_prompt"].visible  # Flux has no CFG


def test_sd3_fields() -> None:
    states = evaluate(
        {"model_family": "sd3", "weighting_scheme": "mode", "pretrained_model_name_or_path": "/m"},
        CPU,
    )
    assert states["sd3_drop_t5"].active and states["mode_scale"].active
    assert states["validation_negative_prompt"].active
    assert not states["flux_guidance_value"].visible
    assert states["flux_guidance_value"].reason == "only for Flux.1 models"
    assert not states["logit_mean"].visible


@pytest.mark.parametrize("family", ["demo", "sd1x", "sdxl"])
def test_flow_fields_hidden_for_sd_families(family: str) -> None:
    states = evaluate({"model_family": family}, CPU)
    for name in FLOW_FIELDS:
        assert not states[name].visible
        assert states[name].reason == "only for Flux.1 or SD3 models"
    for name in SD_ONLY:
        assert states[name].visible, name


def test_trainer_help_lists_the_flow_fields() -> None:
    from registry.cli import build_parser

    text = build_parser(prog="python -m trainer").format_help()
    for name in [*FLOW_FIELDS, "flux_guidance_value", "sd3_drop_t5", "logit_mean", "mode_scale"]:
        assert f"--{name}" in text
    assert "flux" in text and "sd3" in text


def test_quantisation_choices_need_their_platform_and_package() -> None:
    cpu = evaluate({}, PlatformContext("cpu", frozenset({"torchao"})))["base_model_precision"]
    assert cpu.choices == ("no_change", "int8")
    assert cpu.unavailable_choices["nf4"] == "needs an NVIDIA GPU (CUDA)"
    assert cpu.unavailable_choices["fp8"] == "needs an NVIDIA GPU (CUDA)"
    bare = evaluate({}, CPU)["base_model_precision"]
    assert "pip install torchao" in bare.unavailable_choices["int8"]
    gpu = PlatformContext("cuda", frozenset({"torchao", "bitsandbytes"}))
    assert evaluate({}, gpu)["base_model_precision"].choices == ("no_change", "int8", "fp8", "nf4")


def test_a_quantisation_the_machine_cannot_run_is_refused_before_start() -> None:
    from registry.validation import validate_config

    raw = {
        "model_family": "flux",
        "pretrained_model_name_or_path": "/models/flux",
        "datasets": [{"path": "/data"}],
        "base_model_precision": "nf4",
    }
    result = validate_config(raw, PlatformContext("cpu", frozenset({"torchao"})))
    assert not result.ok
    [issue] = [i for i in result.errors if i.path == "base_model_precision"]
    assert "needs an NVIDIA GPU (CUDA)" in issue.message


def test_flow_models_need_sizes_in_multiples_of_16() -> None:
    from registry.validation import validate_config

    raw = {
        "model_family": "flux",
        "pretrained_model_name_or_path": "/models/flux",
        "resolution": 72,
        "datasets": [{"path": "/data", "bucket_step": 24}],
    }
    result = validate_config(raw)
    messages = {i.path: i.message for i in result.errors}
    assert "multiple of 16 for flux models" in messages["resolution"]
    assert "try 64" in messages["resolution"]
    assert "multiple of 16 for flux models" in messages["datasets[0].bucket_step"]
    sdxl = validate_config(raw | {"model_family": "sdxl"})
    assert not [i for i in sdxl.errors if i.path in ("resolution", "datasets[0].bucket_step")]


def test_a_folder_of_another_family_is_refused_before_start(tmp_path) -> None:
    import json

    from registry.validation import validate_config

    sdxl = tmp_path / "my-sdxl"
    sdxl.mkdir()
    (sdxl / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    raw = {
        "model_family": "flux",
        "pretrained_model_name_or_path": str(sdxl),
        "datasets": [{"path": str(tmp_path)}],
    }
    [issue] = [i for i in validate_config(raw).errors if i.path == "pretrained_model_name_or_path"]
    assert issue.message == (
        f"model_family is flux but {sdxl} is a sdxl model (its model_index.json names "
        "StableDiffusionXLPipeline): set model_family to sdxl, or choose a flux model"
    )
    fine = validate_config(raw | {"model_family": "sdxl"})
    assert not [i for i in fine.errors if i.path == "pretrained_model_name_or_path"]
