"""Every field that is active for a config (per the registry's evaluator) is read by the
trainer during a short real training: no registry field is silently ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import fast, read_events, run_in_process

pytestmark = pytest.mark.slow

CASES: dict[str, dict[str, Any]] = {
    "lora": {
        "validation_steps": 2,
        "checkpointing_steps": 2,
        "lr_scheduler": "polynomial",
        "train_text_encoder": True,
        "snr_gamma": 5.0,
        "validation_scheduler": "euler_a",
    },
    "full": {
        "model_type": "full",
        "use_ema": True,
        "optimizer": "sgd",
        "lr_scheduler": "cosine_with_restarts",
        "loss_type": "huber",
        "max_train_steps": 0,
        "num_train_epochs": 1,
        "train_batch_size": 16,
    },
    "prodigy_dataset": {
        "optimizer": "prodigy",
        "use_dataset": True,
        "cache_latents": True,
        "eval_steps": 2,  # the eval loss with the VAE moved off the device by the cache
    },
    "adafactor": {"optimizer": "adafactor", "adafactor_relative_step": True},
    "came_range_bias": {
        "optimizer": "came",
        "timestep_bias_strategy": "range",
        "timestep_bias_begin": 100,
        "timestep_bias_end": 600,
    },
    "schedulefree_later_bias": {
        "optimizer": "adamw_schedulefree",
        "timestep_bias_strategy": "later",
        "checkpoint_epoch_interval": 1,
    },
    "lion": {"optimizer": "lion", "lr_scheduler": "linear"},
    "data_options": {
        "use_dataset_options": True,  # captions, tag dropout, size filter, masks, regularization
        "prior_loss_weight": 0.5,
        "masked_loss_probability": 0.5,
    },
    "lycoris_loha": {"lora_type": "lycoris", "lycoris_algo": "loha", "train_text_encoder": True},
    "lycoris_lokr": {"lora_type": "lycoris", "lokr_factor": 4, "lokr_decompose_both": True},
}


def _active(values: dict[str, Any], scope: Any) -> set[str]:
    from registry.evaluator import PlatformContext, evaluate

    states = evaluate(values, PlatformContext(device="cpu"), scope=scope)
    return {name for name, st in states.items() if st.visible and st.enabled}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_active_field_is_read(case: str, tmp_path: Path, image_folder: Path) -> None:
    pytest.importorskip("registry.evaluator")
    from registry.field import Scope

    overrides = dict(CASES[case])
    if overrides.pop("use_dataset", False):
        overrides["datasets"] = [
            {
                "path": str(image_folder),
                "shuffle_caption": True,
                "caption_dropout_probability": 0.2,
                "eval_split": 2,
            }
        ]
    if overrides.pop("use_dataset_options", False):
        overrides["datasets"] = [
            {
                "path": str(image_folder),
                "caption_strategy": "textfile_or_filename",
                "prepend_instance_prompt": True,
                "instance_prompt": "tok",
                "caption_tag_dropout": 0.2,
                "minimum_image_size": 10,
                "mask_source": "alpha",
            },
            {"path": str(image_folder), "kind": "regularization", "mask_source": "file"},
        ]
    code, cfg = run_in_process(fast(tmp_path / "run", **overrides))
    assert code == 0, read_events(tmp_path / "run")[-1]
    plain = cfg.plain()
    unread = _active(plain, Scope.CONFIG) - cfg.read - {"datasets"}
    assert not unread, f"active fields never read by the trainer: {sorted(unread)}"
    for entry, raw in zip(cfg.datasets, plain["datasets"], strict=True):
        unread = _active(raw, Scope.DATASET) - entry.read
        assert not unread, f"active dataset fields never read: {sorted(unread)}"
