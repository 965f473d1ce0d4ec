"""SDXL: the SD family with two CLIP encoders and the UNet's added conditioning (the second
encoder's projected pooled output and the size/crop time ids); its VAE runs in fp32 (the
original SDXL VAE overflows in fp16)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from trainer.families.sd import SD


class SDXL(SD):
    names = ("sdxl",)
    pipeline_class_name = "StableDiffusionXLPipeline"
    text_encoder_names = ("text_encoder", "text_encoder_2")
    trainable_text_encoder_names = ("text_encoder", "text_encoder_2")

    def part_dtypes(self, weight_dtype: torch.dtype) -> dict[str, torch.dtype]:
        return super().part_dtypes(weight_dtype) | {"vae": torch.float32}

    def unet_kwargs(
        self, embeds: Mapping[str, torch.Tensor], batch: Mapping[str, Any], dtype: torch.dtype
    ) -> dict[str, Any]:
        from trainer.models import sdxl_time_ids

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
