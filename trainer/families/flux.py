"""Flux.1 (dev and schnell): a FluxTransformer2DModel over 2x2-packed latents, CLIP-L pooled
output plus T5 hidden states as conditioning, flow matching.

dev and schnell differ in the transformer config: dev has a guidance embedding
(`guidance_embeds`) and is fed `flux_guidance_value` while training; schnell has none. The
transformer takes timestep / 1000 (it scales by 1000 itself), latent image ids (row, column)
and zero text ids. Only CLIP trains with train_text_encoder; T5 stays frozen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trainer.families._parts import TextEncoderUse, t5_tokenizer_class
from trainer.families.base import Noised, load_kwargs, local_first
from trainer.families.flow import FlowFamily

# t5_max_length 0: the length the model was distilled with (schnell) or the pipeline's maximum.
DEFAULT_T5_LENGTH = {True: 512, False: 256}  # by guidance_embeds (dev / schnell)


class Flux(FlowFamily):
    names = ("flux",)
    pipeline_class_name = "FluxPipeline"
    text_encoder_names = ("text_encoder", "text_encoder_2")
    trainable_text_encoder_names = ("text_encoder",)
    # CLIP gives only its pooled output (after the final layer): every layer reaches the loss.
    text_encoder_use = (TextEncoderUse(pooled=True),)

    @classmethod
    def load(cls, cfg: Mapping[str, Any], path: str) -> Flux:
        import diffusers
        from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel

        cls.check_folder(cfg, path)
        kw, tok_kw = load_kwargs(cfg)
        config = local_first(
            diffusers.FlowMatchEulerDiscreteScheduler.load_config,
            path,
            tok_kw,
            subfolder="scheduler",
        )
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(config)
        vae_path = cfg["pretrained_vae_model_name_or_path"]
        if vae_path:
            vae = local_first(diffusers.AutoencoderKL.from_pretrained, vae_path, tok_kw)
        else:
            vae = local_first(diffusers.AutoencoderKL.from_pretrained, path, kw, subfolder="vae")
        return cls(
            cfg,
            path,
            denoiser=local_first(
                diffusers.FluxTransformer2DModel.from_pretrained, path, kw, subfolder="transformer"
            ),
            vae=vae,
            text_encoders=[
                local_first(CLIPTextModel.from_pretrained, path, kw, subfolder="text_encoder"),
                local_first(T5EncoderModel.from_pretrained, path, kw, subfolder="text_encoder_2"),
            ],
            tokenizers=[
                local_first(CLIPTokenizer.from_pretrained, path, tok_kw, subfolder="tokenizer"),
                local_first(
                    t5_tokenizer_class().from_pretrained, path, tok_kw, subfolder="tokenizer_2"
                ),
            ],
            scheduler=scheduler,
        )

    @property
    def guidance(self) -> bool:
        """dev (guidance-distilled) rather than schnell."""
        return bool(self.denoiser.config.guidance_embeds)

    @property
    def t5_length(self) -> int:
        return int(self.cfg["t5_max_length"]) or DEFAULT_T5_LENGTH[self.guidance]

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def encode_prompts(
        self, text_encoders: Sequence[Any], captions: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """{"prompt_embeds": T5 last hidden state, "pooled_prompt_embeds": CLIP pooled output}."""
        clip, t5 = text_encoders
        clip_tok, t5_tok = self.tokenizers
        ids = clip_tok(
            list(captions),
            padding="max_length",
            max_length=clip_tok.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        pooled = clip(ids.to(_device(clip)), output_hidden_states=False).pooler_output
        t5_ids = t5_tok(
            list(captions),
            padding="max_length",
            max_length=self.t5_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        embeds = t5(t5_ids.to(_device(t5)), output_hidden_states=False)[0]
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}

    def predict(
        self,
        denoiser: Any,
        noised: Noised,
        embeds: Mapping[str, torch.Tensor],
        batch: Mapping[str, Any],
    ) -> torch.Tensor:
        from diffusers import FluxPipeline

        x = noised.noisy
        b, c, h, w = x.shape
        dtype, device = x.dtype, x.device
        packed = FluxPipeline._pack_latents(x, b, c, h, w)
        img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, device, dtype)
        prompt = embeds["prompt_embeds"].to(device, dtype)
        txt_ids = torch.zeros(prompt.shape[1], 3, device=device, dtype=dtype)
        guidance = None
        if self.guidance:
            guidance = torch.full((b,), float(self.cfg["flux_guidance_value"]), device=device)
        out = denoiser(
            hidden_states=packed,
            timestep=noised.timesteps.to(dtype) / self.num_train_timesteps,
            guidance=guidance,
            pooled_projections=embeds["pooled_prompt_embeds"].to(device, dtype),
            encoder_hidden_states=prompt,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]
        vsf = self.vae_scale_factor
        return FluxPipeline._unpack_latents(out, h * vsf, w * vsf, vsf)

    def validation_call(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        # FluxPipeline's guidance_scale is dev's distilled guidance (ignored by schnell).
        return {
            "guidance_scale": cfg["validation_guidance_scale"],
            "max_sequence_length": self.t5_length,
        }


def _device(module: Any) -> torch.device:
    return next(module.parameters()).device
