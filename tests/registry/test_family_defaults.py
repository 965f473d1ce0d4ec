"""Per-family defaults: valid data, applied only where the user set nothing."""

from __future__ import annotations

from registry.catalogue import FIELDS
from registry.family_defaults import FAMILY_DEFAULTS, default_for, family_changes
from registry.validation import check_value, validate_config


def test_every_family_default_is_a_valid_value_of_a_known_field() -> None:
    families = {c.value for c in FIELDS["model_family"].choices}
    assert set(FAMILY_DEFAULTS) <= families
    for family, table in FAMILY_DEFAULTS.items():
        for name, value in table.items():
            assert name in FIELDS, f"{family}: unknown field {name}"
            assert check_value(FIELDS[name], value) is None, f"{family}.{name}={value!r}"


def test_an_empty_config_takes_the_demo_family_defaults() -> None:
    values = validate_config({}).values
    assert values["model_family"] == "demo"
    assert values["resolution"] == 64
    assert values["max_train_steps"] == FAMILY_DEFAULTS["demo"]["max_train_steps"] <= 100
    assert 0 < values["validation_steps"] < values["max_train_steps"]


def test_another_family_gets_its_own_defaults_and_loses_the_demos() -> None:
    values = validate_config(
        {"model_family": "sdxl", "pretrained_model_name_or_path": "/models/sdxl"}
    ).values
    assert values["resolution"] == 1024
    assert values["max_train_steps"] == FIELDS["max_train_steps"].default  # not the demo's 60


def test_a_value_the_user_set_always_wins() -> None:
    raw = {"model_family": "sdxl", "pretrained_model_name_or_path": "/m", "resolution": 768}
    assert validate_config(raw).values["resolution"] == 768
    assert validate_config({"max_train_steps": 7}).values["max_train_steps"] == 7


def test_a_family_switch_lists_only_unset_fields_whose_default_moves() -> None:
    moved = family_changes("demo", "sdxl", {"max_train_steps": 10})
    assert moved["resolution"] == (64, 1024)
    assert "max_train_steps" not in moved  # the user's own edit is kept
    assert moved["validation_steps"] == (20, FIELDS["validation_steps"].default)
    assert family_changes("sdxl", "sdxl", {}) == {}
    assert default_for("resolution", "sd1x") == FIELDS["resolution"].default
