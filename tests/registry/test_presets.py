"""The preset files: valid against the catalogue, complete, noted, and each fits its GPU size
by the project's own memory estimate."""

from __future__ import annotations

import pytest

from registry import presets
from registry.estimate import GB, estimate
from registry.validation import validate_config

GRID = [
    (family, goal, gb)
    for family in presets.families()
    for goal in presets.GOALS
    for gb in presets.MEMORY_GB
]


def test_the_preset_files_have_no_problems() -> None:
    assert presets.check_presets() == []
    assert {"sd15", "sdxl", "flux"} <= set(presets.families())


@pytest.mark.parametrize(("family", "goal", "gb"), GRID)
def test_each_preset_is_a_valid_config_that_fits_its_gpu(family: str, goal: str, gb: int) -> None:
    preset = presets.get_preset(family, goal, gb)
    assert all(note.strip() for note in preset.notes)
    if preset.unavailable:
        assert "GB" in preset.unavailable  # says why, in memory terms
        return
    raw = {**preset.config, "pretrained_model_name_or_path": "/models/base"}
    result = validate_config(raw)
    assert [e for e in result.errors if e.kind == "value"] == []
    peak = estimate(result.values).peak_bytes
    assert peak <= gb * GB, f"{preset.title}: ~{peak / GB:.1f} GB"


def test_a_bigger_gpu_never_gets_a_smaller_batch() -> None:
    for family in presets.families():
        batches = [
            presets.get_preset(family, "person", gb).config.get("train_batch_size", 1)
            for gb in presets.MEMORY_GB
        ]
        assert batches == sorted(batches)


def test_diff_and_apply_keep_what_the_preset_does_not_set() -> None:
    preset = presets.get_preset("sd15", "style", 16)
    explicit = {"validation_prompt": "my prompt", "lora_rank": 4, "train_batch_size": 2}
    rows = {r.name: (r.before, r.after) for r in presets.preset_diff(preset, explicit)}
    assert rows["lora_rank"] == (4, 32)
    assert rows["resolution"] == (64, 512)  # the demo family's default on screen before
    assert "train_batch_size" not in rows  # already 2: no change to show
    assert "validation_prompt" not in rows
    applied = presets.apply_preset(preset, explicit)
    assert applied["validation_prompt"] == "my prompt"
    assert applied["lora_rank"] == 32 and applied["model_family"] == "sd1x"
    assert explicit["lora_rank"] == 4  # the caller's dict is not changed (undo keeps it)


def test_the_memory_size_offered_first_is_the_largest_that_fits() -> None:
    assert presets.nearest_memory(None) == 8
    assert presets.nearest_memory(23.6) == 24  # a "24 GB" card reports a little less
    assert presets.nearest_memory(11.0) == 8
    assert presets.nearest_memory(80) == 48
