"""Stable Diffusion 1.x / 2.x (and, in subclasses, the demo model and SDXL): a UNet with DDPM
noise, epsilon or v-prediction targets, min-SNR weighting.

Loading, LoRA, prompt encoding and saving are trainer.models / trainer.weights /
trainer.losses, called here rather than copied, so one fix there serves every SD family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from trainer.families.base import Family, Noised

VALIDATION_SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
}


class SD(Family):
    names: ClassVar[tuple[str, ...]] = ("sd1x", "sd2x")
    pipeline_class_name = "StableDiffusionPipeline"
    denoiser_name = "unet"
    text_encoder_names: ClassVar[tuple[str, ...]] = ("text_encoder",)
    trainable_text_encoder_names: ClassVar[tuple[str, ...]] = ("text_encoder",)

    def __init__(self, cfg: Mapping[str, Any], path: str, models: Any) -> None:
        super().__init__(
            cfg,
            path,
            denoiser=models.unet,
            vae=models.vae,
            text_encoders=models.text_encoders,
            tokenizers=models.tokenizers,
            scheduler=models.inference_scheduler or models.noise_scheduler,
        )
        self.models = models  # trainer.models.Models: what the delegated functions take
        self.noise_scheduler = models.noise_scheduler  # DDPM over the model's config
        if cfg["prediction_type"] != "auto":
            self.noise_scheduler.register_to_config(prediction_type=cfg["prediction_type"])

    @classmethod
    def load(cls, cfg: Mapping[str, Any], path: str) -> SD:
        from trainer.models import load_models

        cls.check_folder(cfg, path)
        return cls(cfg, path, load_models(cfg, path))

    @property
    def prediction_type(self) -> str:
        return str(self.noise_scheduler.config.prediction_type)

    @property
    def pipeline_class(self) -> Any:
        return self.models.pipeline_class

    # ---- LoRA and prompts ------------------------------------------------------------------
    def add_lora(self) -> None:
        from trainer.models import add_lora

        add_lora(self.models, self.cfg)
        self.initial_adapters = self.models.initial_adapters

    def encode_prompts(
        self, text_encoders: Sequence[Any], captions: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        from trainer.models import encode_tokens, tokenize

        embeds, pooled = encode_tokens(
            text_encoders, tokenize(self.models, captions), self.models.is_sdxl
        )
        out = {"prompt_embeds": embeds}
        if pooled is not None:
            out["pooled_prompt_embeds"] = pooled
        return out

    # ---- noise, forward, loss --------------------------------------------------------------
    def add_noise(self, latents: torch.Tensor, batch: Mapping[str, Any]) -> Noised:
        """DDPM noising; the random draws in the order the trainer has always made them."""
        cfg, sched = self.cfg, self.noise_scheduler
        device = latents.device
        noise = torch.randn_like(latents)
        if cfg["noise_offset"]:
            noise += cfg["noise_offset"] * torch.randn(
                latents.shape[0], latents.shape[1], 1, 1, device=device, dtype=latents.dtype
            )
        t_max = min(cfg["max_timestep"], sched.config.num_train_timesteps)
        timesteps = torch.randint(cfg["min_timestep"], t_max, (latents.shape[0],), device=device)
        timesteps = timesteps.long()
        model_noise = noise
        if cfg["input_perturbation"]:
            model_noise = noise + cfg["input_perturbation"] * torch.randn_like(noise)
        noisy = sched.add_noise(latents, model_noise, timesteps)
        if self.prediction_type == "v_prediction":
            target = sched.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return Noised(noisy=noisy, timesteps=timesteps, target=target)

    def unet_kwargs(
        self, embeds: Mapping[str, torch.Tensor], batch: Mapping[str, Any], dtype: torch.dtype
    ) -> dict[str, Any]:
        """Extra conditioning of the UNet call (SDXL adds its time ids and pooled embeds)."""
        return {}

    def predict(
        self,
        denoiser: Any,
        noised: Noised,
        embeds: Mapping[str, torch.Tensor],
        batch: Mapping[str, Any],
    ) -> torch.Tensor:
        x = noised.noisy
        return denoiser(
            x,
            noised.timesteps,
            embeds["prompt_embeds"].to(x.device, x.dtype),
            return_dict=False,
            **self.unet_kwargs(embeds, batch, x.dtype),
        )[0]

    def loss(self, pred: torch.Tensor, noised: Noised) -> torch.Tensor:
        from trainer.losses import training_loss

        cfg = self.cfg
        kind = cfg["loss_type"]
        huber = kind in ("huber", "smooth_l1")
        return training_loss(
            pred,
            noised.target,
            noised.timesteps,
            loss_type=kind,
            huber_schedule=cfg["huber_schedule"] if huber else "constant",
            huber_c=cfg["huber_c"] if huber else 0.0,
            snr_gamma=cfg["snr_gamma"],
            prediction_type=self.prediction_type,
            noise_scheduler=self.noise_scheduler,
        )

    # ---- saving and validation -------------------------------------------------------------
    def save_weights(
        self,
        accelerator: Any,
        denoiser: Any,
        text_encoders: Sequence[Any],
        ema: Any,
        out_dir: Path,
    ) -> Path:
        from trainer.weights import save_final_weights

        return save_final_weights(
            self.cfg, self.models, accelerator, denoiser, list(text_encoders), ema, Path(out_dir)
        )

    def pipeline(self, denoiser: Any, text_encoders: Sequence[Any], scheduler: Any = None) -> Any:
        return self.models.pipeline(denoiser, list(text_encoders), scheduler or self.scheduler)

    def set_attention_backend(self, backend: str) -> None:
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        if backend == "xformers":
            self.denoiser.enable_xformers_memory_efficient_attention()
        elif backend == "eager":
            self.denoiser.set_attn_processor(AttnProcessor())
        else:
            self.denoiser.set_attn_processor(AttnProcessor2_0())

    def validation_scheduler(self, cfg: Mapping[str, Any]) -> Any:
        import diffusers

        name = VALIDATION_SCHEDULERS.get(cfg["validation_scheduler"], "DDIMScheduler")
        return getattr(diffusers, name).from_config(self.noise_scheduler.config)

    def validation_call(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "guidance_scale": cfg["validation_guidance_scale"],
            "guidance_rescale": cfg["validation_guidance_rescale"],
            "negative_prompt": cfg["validation_negative_prompt"] or None,
        }


class Demo(SD):
    """The built-in tiny demo model (generated locally on first use; an SD 1.x shape)."""

    names = ("demo",)

    @classmethod
    def check_folder(cls, cfg: Mapping[str, Any], path: str) -> None:
        return None  # always the generated demo folder

    @classmethod
    def default_dataset(cls) -> Path | None:
        from trainer.demo_dataset import ensure_demo_dataset

        return ensure_demo_dataset()
