"""The SD pieces below the family classes: `Models` (the loaded parts of an SD 1.x / 2.x /
SDXL model, what trainer.families.sd, trainer.single_file, trainer.weights and
trainer.lora_metadata take), the schedulers read from a model's config, and which text
encoder outputs reach the UNet. Nothing here imports a family or a loader, so the loaders
(trainer.families.sd, trainer.single_file) can both build on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from trainer.families._parts import TextEncoderUse, local_first

# Per text encoder, which of its outputs reach the UNet (the SD and SDXL classes' own).
SD_TEXT_ENCODER_USE: tuple[TextEncoderUse, ...] = (TextEncoderUse(),)
SDXL_TEXT_ENCODER_USE: tuple[TextEncoderUse, ...] = (
    TextEncoderUse(skip_last=1),
    TextEncoderUse(skip_last=1, pooled=True),
)


def text_encoder_use(family: str) -> tuple[TextEncoderUse, ...]:
    """Per text encoder of model_family `family` (an SD one), which of its outputs reach the UNet."""
    return SDXL_TEXT_ENCODER_USE if family == "sdxl" else SD_TEXT_ENCODER_USE


@dataclass
class Models:
    family: str
    path: str
    unet: Any
    vae: Any
    noise_scheduler: Any
    tokenizers: list[Any]
    text_encoders: list[Any]
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    # The base model's own scheduler (class and config of its scheduler/ folder): what a
    # saved full model carries; training uses noise_scheduler (DDPM over the same config).
    inference_scheduler: Any = None
    # PiSSA only: the adapters' initial tensors (unet, then text encoders), needed to turn
    # the trained adapters into plain LoRAs for the original base weights (weights.py).
    initial_adapters: list[dict[str, torch.Tensor]] | None = None
    # What the run trained on, per dataset folder (the saved files' metadata reads it).
    dataset_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def is_sdxl(self) -> bool:
        return self.family == "sdxl"

    @property
    def pipeline_class(self) -> Any:
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        return StableDiffusionXLPipeline if self.is_sdxl else StableDiffusionPipeline

    def pipeline(self, unet: Any, text_encoders: Sequence[Any], scheduler: Any) -> Any:
        """A diffusers pipeline over these parts (for validation images and full-model saves)."""
        parts: dict[str, Any] = {
            "vae": self.vae,
            "unet": unet,
            "scheduler": scheduler,
            "tokenizer": self.tokenizers[0],
            "text_encoder": text_encoders[0],
        }
        if self.is_sdxl:
            parts |= {"tokenizer_2": self.tokenizers[1], "text_encoder_2": text_encoders[1]}
        else:
            parts |= {
                "safety_checker": None,
                "feature_extractor": None,
                "requires_safety_checker": False,
            }
        return self.pipeline_class(**parts)


def schedulers(path: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """(DDPM scheduler for training, the base model's own scheduler) from one config."""
    import diffusers

    config = local_first(diffusers.DDPMScheduler.load_config, path, kwargs, subfolder="scheduler")
    own = getattr(diffusers, str(config.get("_class_name", "")), None)
    if not (isinstance(own, type) and issubclass(own, diffusers.SchedulerMixin)):
        own = diffusers.DDPMScheduler  # not a diffusers scheduler: keep the training one
    return diffusers.DDPMScheduler.from_config(config), own.from_config(config)
