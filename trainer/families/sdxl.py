"""SDXL: the SD family with two CLIP encoders and the UNet's added conditioning (the second
encoder's projected pooled output and the size/crop time ids); its VAE runs in fp32 (the
original SDXL VAE overflows in fp16)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trainer.families.sd import SD
from trainer.families.sd_models import SDXL_TEXT_ENCODER_USE


def sdxl_time_ids(
    original_sizes: Sequence[tuple[int, int]],
    crops: Sequence[tuple[int, int]],
    targets: Sequence[tuple[int, int]],
    use_original: bool,
    use_crop: bool,
) -> torch.Tensor:
    """The UNet's added time ids per sample: (original size or target, crop top-left or 0,
    target size), as sdxl_original_size_conditioning / sdxl_crop_conditioning say."""
    rows = []
    for orig, crop, target in zip(original_sizes, crops, targets, strict=True):
        rows.append([*(orig if use_original else target), *(crop if use_crop else (0, 0)), *target])
    return torch.tensor(rows, dtype=torch.float32)


class SDXL(SD):
    names = ("sdxl",)
    pipeline_class_name = "StableDiffusionXLPipeline"
    text_encoder_names = ("text_encoder", "text_encoder_2")
    trainable_text_encoder_names = ("text_encoder", "text_encoder_2")
    # As the SDXL pipeline: penultimate hidden states of both encoders, and the projected
    # pooled output of the second.
    text_encoder_use = SDXL_TEXT_ENCODER_USE

    def part_dtypes(self, weight_dtype: torch.dtype) -> dict[str, torch.dtype]:
        return super().part_dtypes(weight_dtype) | {"vae": torch.float32}

    def unet_kwargs(
        self, embeds: Mapping[str, torch.Tensor], batch: Mapping[str, Any], dtype: torch.dtype
    ) -> dict[str, Any]:
        pooled = embeds["pooled_prompt_embeds"]
        time_ids = sdxl_time_ids(
            batch["original_sizes"],
            batch["crop_top_lefts"],
            batch["target_sizes"],
            self.cfg["sdxl_original_size_conditioning"],
            self.cfg["sdxl_crop_conditioning"],
        )
        return {
            "added_cond_kwargs": {
                "text_embeds": pooled.to(pooled.device, dtype),
                "time_ids": time_ids.to(pooled.device, dtype),
            }
        }
