"""One clear message per bad value, for every kind of bad input."""

from __future__ import annotations

from typing import Any

import pytest

from registry.catalogue import DATASET_FIELDS, FIELDS
from registry.defaults import default_config, default_dataset
from registry.evaluator import PlatformContext
from registry.validation import Issue, check_value, validate_config

CPU = PlatformContext("cpu")
CUDA = PlatformContext("cuda", frozenset({"bitsandbytes", "xformers", "torchao"}))


def only_error(raw: dict[str, Any], ctx: PlatformContext | None = None) -> Issue:
    result = validate_config(raw, ctx)
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def test_an_empty_config_is_the_defaults_and_valid() -> None:
    result = validate_config({})
    assert result.ok
    assert result.values == default_config()


def test_the_demo_model_at_a_large_resolution_is_warned_about() -> None:
    # The demo family's own default resolution (64) is the one it is made for.
    assert validate_config({}).warnings == []
    assert "try 64" in validate_config({"resolution": 512}).warnings[0].message
    assert validate_config({"resolution": 64}).warnings == []
    assert validate_config({"resolution": 128}).warnings == []


def test_every_default_passes_its_own_field_check() -> None:
    for f in (*FIELDS.values(), *DATASET_FIELDS.values()):
        assert check_value(f, f.default) is None, f.name


def test_explicit_values_override_defaults_and_stay_even_when_equal() -> None:
    result = validate_config({"learning_rate": 1e-4, "lora_rank": 16})
    assert result.ok
    assert result.values["lora_rank"] == 16
    assert result.values["learning_rate"] == 1e-4


def test_unknown_key_names_close_matches() -> None:
    issue = only_error({"lerning_rate": 1e-4})
    assert issue.path == "lerning_rate"
    assert "unknown option 'lerning_rate'" in issue.message
    assert "did you mean 'learning_rate'" in issue.message


def test_unknown_key_without_close_match() -> None:
    assert only_error({"zzz": 1}).message == "unknown option 'zzz'"


def test_dataset_key_at_top_level_points_to_datasets() -> None:
    issue = only_error({"repeats": 3})
    assert "dataset option" in issue.message and "[[datasets]]" in issue.message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("lora_rank", True, "must be a whole number, not the boolean true"),
        ("lora_rank", "8", "must be a whole number, not the text '8'"),
        ("lora_rank", 8.5, "must be a whole number, not 8.5"),
        ("learning_rate", "1e-4", "must be a number, not the text '1e-4'"),
        ("learning_rate", False, "must be a number, not the boolean false"),
        ("learning_rate", float("nan"), "must be a finite number, not nan"),
        ("use_ema", 1, "must be true or false, not the number 1"),
        ("use_ema", "true", "must be true or false, not the text 'true'"),
        ("output_dir", 5, "must be text, not the number 5"),
        ("output_dir", None, "must be text, not nothing (null)"),
        ("lora_target_modules", "to_q", "must be a list of text values, not the text 'to_q'"),
    ],
)
def test_wrong_type_is_an_error_and_never_coerced(key: str, value: Any, expected: str) -> None:
    result = validate_config({key: value})
    assert [(i.path, i.message) for i in result.errors] == [(key, expected)]
    assert result.values[key] == FIELDS[key].default  # the bad value is not used


def test_an_int_is_fine_for_a_float_field_and_becomes_a_float() -> None:
    result = validate_config({"lora_alpha": 8})
    assert result.ok
    assert result.values["lora_alpha"] == 8.0 and isinstance(result.values["lora_alpha"], float)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("lora_rank", 0, "must be at least 1 (got 0)"),
        ("learning_rate", 0.0, "must be greater than 0 (got 0.0)"),
        ("lora_dropout", 1.0, "must be less than 1 (got 1.0)"),
        ("min_timestep", 1000, "must be at most 999 (got 1000)"),
        ("resolution", 513, "must be a multiple of 8 (got 513; try 512 or 520)"),
        ("resolution", 32, "must be at least 64 (got 32)"),
    ],
)
def test_out_of_range(key: str, value: Any, expected: str) -> None:
    issue = only_error({key: value})
    assert (issue.path, issue.message) == (key, expected)


def test_choice_not_allowed_suggests_the_near_one() -> None:
    issue = only_error({"optimizer": "adamw_8bit"})
    assert issue.path == "optimizer"
    assert issue.message.startswith("'adamw_8bit' is not one of adamw, adamw8bit, adafactor")
    assert "did you mean 'adamw8bit'" in issue.message


def test_multi_choice_rejects_unknown_and_repeated_values() -> None:
    assert "'to_z' is not one of" in only_error({"lora_target_modules": ["to_q", "to_z"]}).message
    assert "more than once" in only_error({"lora_target_modules": ["to_q", "to_q"]}).message


def test_pattern_mismatch_explains_the_expected_form() -> None:
    issue = only_error({"gpu_ids": "0;1"})
    assert (
        issue.message
        == "'0;1' is not valid here: expected 'all' or GPU ids separated by commas, like 0,1"
    )


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("optimizer", "adamw8bit", "needs an NVIDIA GPU (CUDA)"),
        ("mixed_precision", "fp16", "needs an NVIDIA GPU (CUDA)"),
        ("mixed_precision", "fp8", "needs an NVIDIA GPU (CUDA)"),
        ("attention_backend", "xformers", "needs an NVIDIA GPU (CUDA)"),
    ],
)
def test_cuda_only_choice_on_cpu_is_an_error_with_the_reason(
    key: str, value: str, reason: str
) -> None:
    issue = only_error({key: value}, CPU)
    assert (issue.path, issue.message) == (key, f"{value!r} is not available here: {reason}")
    assert validate_config({key: value}, CUDA).ok
    assert validate_config({key: value}).ok  # no platform given: a file may be for a GPU box


def test_missing_package_on_cuda_is_an_error_naming_it() -> None:
    issue = only_error({"optimizer": "adamw8bit"}, PlatformContext("cuda"))
    assert "bitsandbytes" in issue.message


@pytest.mark.parametrize("backend", ["torchao", "transformer_engine"])
def test_fp8_needs_one_of_its_backends(backend: str) -> None:
    issue = only_error({"mixed_precision": "fp8"}, PlatformContext("cuda", frozenset({"xformers"})))
    assert issue.path == "mixed_precision" and issue.kind == "platform"
    assert "torchao" in issue.message and "transformer_engine" in issue.message
    assert validate_config(
        {"mixed_precision": "fp8"}, PlatformContext("cuda", frozenset({backend}))
    ).ok


def test_hidden_field_set_to_non_default_is_a_warning_not_an_error() -> None:
    result = validate_config(
        {"optimizer": "lion", "adam_beta1": 0.8, "adam_beta2": 0.999, "resolution": 64}
    )
    assert result.ok
    assert [(w.path, w.severity) for w in result.warnings] == [("adam_beta1", "warning")]
    assert result.warnings[0].message == (
        "is set to 0.8 but is ignored: shown only when optimizer is adamw or adamw8bit"
    )


def test_greyed_out_and_platform_hidden_fields_warn_too() -> None:
    result = validate_config(
        {"validation_steps": 0, "validation_seed": 3, "allow_tf32": False, "resolution": 64}, CPU
    )
    assert result.ok
    assert {w.path for w in result.warnings} == {"validation_seed", "allow_tf32"}


def test_cross_field_rules() -> None:
    issue = only_error({"min_timestep": 500, "max_timestep": 400})
    assert issue.path == "min_timestep" and "max_timestep" in issue.message
    result = validate_config({"num_machines": 2, "num_processes": 2, "machine_rank": 2})
    assert {i.path for i in result.errors} == {"machine_rank", "main_process_ip"}
    issue = only_error({"model_family": "sd1x", "datasets": [{"path": "/data"}]})
    assert issue.path == "pretrained_model_name_or_path"


def test_a_real_model_needs_an_enabled_dataset() -> None:
    base = {"model_family": "sdxl", "pretrained_model_name_or_path": "/models/sdxl"}
    issue = only_error(base)
    assert issue.path == "datasets" and "add a folder" in issue.message
    issue = only_error({**base, "datasets": [{"path": "/d", "enabled": False}]})
    assert issue.path == "datasets"
    assert validate_config({**base, "datasets": [{"path": "/d"}]}).ok


def test_datasets_are_validated_per_entry_with_indexed_paths() -> None:
    raw = {
        "datasets": [
            {"path": "/a"},
            {"path": "/b", "repeats": 0, "learning_rate": 1e-4, "captoin_strategy": "textfile"},
            "not a table",
            {"repeats": 2},
        ]
    }
    result = validate_config(raw)
    messages = {i.path: i.message for i in result.errors}
    assert messages == {
        "datasets[1].repeats": "must be at least 1 (got 0)",
        "datasets[1].learning_rate": "'learning_rate' is a top-level option, not a dataset option",
        "datasets[1].captoin_strategy": "unknown option 'captoin_strategy'; did you mean 'caption_strategy'?",
        "datasets[2]": "must be a table of dataset options, not the text 'not a table'",
        "datasets[3].path": "choose the folder of images for this dataset",
    }
    # effective entries are complete: defaults fill in, bad values fall back to defaults
    assert result.values["datasets"][0] == {**default_dataset(), "path": "/a"}
    assert result.values["datasets"][1]["repeats"] == 1


def test_dataset_hidden_option_warns_with_its_path() -> None:
    result = validate_config(
        {"resolution": 64, "datasets": [{"path": "/a", "bucketing": True, "crop": "random"}]}
    )
    assert result.ok
    assert [(w.path, w.message) for w in result.warnings] == [
        ("datasets[0].crop", "is set to 'random' but is ignored: shown only when bucketing is off")
    ]


def test_datasets_must_be_a_list() -> None:
    issue = only_error({"datasets": {"path": "/a"}})
    assert issue.path == "datasets" and "list of dataset tables" in issue.message


def test_not_a_mapping_at_all() -> None:
    result = validate_config(["learning_rate"])  # type: ignore[arg-type]  # deliberately not a mapping
    assert not result.ok and "table of options" in result.errors[0].message


def test_every_bad_field_is_reported_at_once() -> None:
    result = validate_config({"lora_rank": 0, "seed": "x", "nope": 1, "resolution": 100})
    assert {i.path for i in result.errors} == {"lora_rank", "seed", "nope", "resolution"}


def test_check_value_for_inline_errors() -> None:
    assert check_value(FIELDS["lora_rank"], 8) is None
    assert check_value(FIELDS["lora_rank"], -1) == "must be at least 1 (got -1)"
    assert check_value(DATASET_FIELDS["caption_extension"], "txt") == (
        "'txt' is not valid here: expected an extension starting with a dot, like .txt"
    )


def test_issue_kinds_separate_bad_values_from_missing_pieces() -> None:
    result = validate_config(
        {"model_family": "sd1x", "lora_rank": 0, "optimizer": "adamw8bit"}, CPU
    )
    kinds = {i.path: i.kind for i in result.errors}
    assert kinds == {
        "lora_rank": "value",
        "optimizer": "platform",
        "pretrained_model_name_or_path": "combination",
        "datasets": "combination",
    }


def test_huber_losses_need_a_positive_threshold_and_a_known_schedule() -> None:
    issue = only_error({"loss_type": "huber", "huber_c": 0.0})
    assert (issue.path, issue.message) == ("huber_c", "must be greater than 0 (got 0.0)")
    issue = only_error({"loss_type": "huber", "huber_schedule": "cosine"})
    assert issue.path == "huber_schedule" and "snr" in issue.message
    assert validate_config({"loss_type": "smooth_l1", "huber_schedule": "exponential"}).ok
