"""The catalogue itself: complete, consistent, and described well enough to use."""

from __future__ import annotations

import pytest

from registry.catalogue import ALL_FIELDS, DATASET_FIELDS, FIELDS, TABS, fields_for_tab
from registry.defaults import default_config, default_dataset
from registry.field import Importance, Platform, Scope

FIXED_NAMES = [
    "model_family",
    "model_type",
    "pretrained_model_name_or_path",
    "output_dir",
    "max_train_steps",
    "num_train_epochs",
    "train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "lr_scheduler",
    "lr_warmup_steps",
    "optimizer",
    "max_grad_norm",
    "checkpointing_steps",
    "checkpoints_total_limit",
    "resume_from_checkpoint",
    "validation_prompt",
    "validation_steps",
    "seed",
    "resolution",
    "lora_rank",
    "lora_alpha",
    "mixed_precision",
    "report_to",
]


def test_size_and_fixed_names() -> None:
    assert len(ALL_FIELDS) >= 120
    assert len(FIELDS) + len(DATASET_FIELDS) == len(ALL_FIELDS)
    for name in FIXED_NAMES:
        assert name in FIELDS


def test_required_choices() -> None:
    assert FIELDS["model_family"].choice_values == (
        "demo",
        "sd1x",
        "sd2x",
        "sdxl",
        "flux",
        "sd3",
    )
    assert FIELDS["model_type"].choice_values == ("lora", "full")
    assert set(FIELDS["optimizer"].choice_values) == {
        "adamw",
        "adamw8bit",
        "adafactor",
        "prodigy",
        "lion",
        "lion8bit",
        "adamw_schedulefree",
        "came",
        "sgd",
    }
    assert set(FIELDS["lr_scheduler"].choice_values) == {
        "constant",
        "constant_with_warmup",
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
    }
    assert FIELDS["report_to"].choice_values == ("none", "tensorboard", "wandb")


def test_tabs_in_contract_order() -> None:
    assert [t.name for t in TABS] == [
        "model",
        "training",
        "optimizer",
        "validation",
        "checkpoints",
        "hardware",
        "datasets",
    ]
    assert {f.tab for f in DATASET_FIELDS.values()} == {"datasets"}
    assert all(f.scope == Scope.DATASET for f in fields_for_tab("datasets"))


@pytest.mark.parametrize("tab", [t.name for t in TABS])
def test_fields_for_tab_sorted_by_section_then_importance(tab: str) -> None:
    info = next(t for t in TABS if t.name == tab)
    fields = fields_for_tab(tab)
    keys = [(info.sections.index(f.section), f.importance.rank) for f in fields]
    assert keys == sorted(keys)
    assert fields, "every tab has fields"


def test_unknown_tab() -> None:
    with pytest.raises(KeyError, match="unknown tab"):
        fields_for_tab("nope")


def test_every_field_has_real_help() -> None:
    for f in ALL_FIELDS:
        assert len(f.help) >= 30, f"{f.name}: help too short"
        assert (f.help[0].isupper() or f.help[0] == "'") and f.help.rstrip().endswith((".", ")")), (
            f.name
        )


def test_every_tab_has_an_essential_field() -> None:
    for tab in TABS:
        assert any(f.importance == Importance.ESSENTIAL for f in fields_for_tab(tab.name)), tab.name


def test_cuda_only_declarations() -> None:
    choices = {c.value: c for c in FIELDS["optimizer"].choices}
    assert choices["adamw8bit"].platforms == (Platform.CUDA,)
    assert choices["adamw8bit"].requires == "bitsandbytes"
    mp = {c.value: c for c in FIELDS["mixed_precision"].choices}
    assert mp["fp16"].platforms == mp["fp8"].platforms == (Platform.CUDA,)
    assert not mp["bf16"].platforms
    xf = {c.value: c for c in FIELDS["attention_backend"].choices}["xformers"]
    assert xf.platforms == (Platform.CUDA,) and xf.requires == "xformers"
    assert FIELDS["allow_tf32"].platforms == (Platform.CUDA,)
    assert FIELDS["sdxl_crop_conditioning"].model_families == ("sdxl",)


def test_defaults_are_fresh_copies() -> None:
    first = default_config()
    first["lora_target_modules"].append("conv1")
    first["datasets"].append({})
    assert default_config()["lora_target_modules"] == ["to_q", "to_k", "to_v", "to_out.0"]
    assert default_config()["datasets"] == []
    assert set(default_dataset()) == set(DATASET_FIELDS)
