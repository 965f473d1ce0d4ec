"""Stable Diffusion 3 / 3.5 (medium and large): an SD3Transformer2DModel, two CLIP encoders
(penultimate hidden states, and both projected pooled outputs as `pooled_projections`) and T5,
flow matching.

The prompt embedding is the two CLIP hidden states concatenated, zero-padded to the T5 width,
then T5's hidden states appended along the sequence, as StableDiffusion3Pipeline builds it.
`sd3_drop_t5` leaves T5 unloaded: its part of the sequence is zeros (what the pipeline feeds
without text_encoder_3), which saves its memory; a full fine-tune still saves the base T5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trainer.families._parts import TextEncoderUse, t5_tokenizer_class
from trainer.families.base import Noised, load_kwargs, local_first
from trainer.families.flow import FlowFamily

DEFAULT_T5_LENGTH = 256  # StableDiffusion3Pipeline's max_sequence_length


class SD3(FlowFamily):
    names = ("sd3",)
    pipeline_class_name = "StableDiffusion3Pipeline"
    text_encoder_names = ("text_encoder", "text_encoder_2", "text_encoder_3")
    trainable_text_encoder_names = ("text_encoder", "text_encoder_2")
    # Both CLIPs: the penultimate hidden state and the projected pooled output (after the
    # final layer), so every layer reaches the loss.
    text_encoder_use = (TextEncoderUse(skip_last=1, pooled=True),) * 2

    @classmethod
    def load(cls, cfg: Mapping[str, Any], path: str) -> SD3:
        import diffusers
        from transformers import (
            CLIPTextModelWithProjection,
            CLIPTokenizer,
            T5EncoderModel,
        )

        cls.check_folder(cfg, path)
        kw, tok_kw = load_kwargs(cfg)
        config = local_first(
            diffusers.FlowMatchEulerDiscreteScheduler.load_config,
            path,
            tok_kw,
            subfolder="scheduler",
        )
        vae_path = cfg["pretrained_vae_model_name_or_path"]
        if vae_path:
            vae = local_first(diffusers.AutoencoderKL.from_pretrained, vae_path, tok_kw)
        else:
            vae = local_first(diffusers.AutoencoderKL.from_pretrained, path, kw, subfolder="vae")
        text_encoders = [
            local_first(CLIPTextModelWithProjection.from_pretrained, path, kw, subfolder=name)
            for name in ("text_encoder", "text_encoder_2")
        ]
        tokenizers = [
            local_first(CLIPTokenizer.from_pretrained, path, tok_kw, subfolder=name)
            for name in ("tokenizer", "tokenizer_2")
        ]
        if not cfg["sd3_drop_t5"]:
            text_encoders.append(
                local_first(T5EncoderModel.from_pretrained, path, kw, subfolder="text_encoder_3")
            )
            tokenizers.append(
                local_first(
                    t5_tokenizer_class().from_pretrained, path, tok_kw, subfolder="tokenizer_3"
                )
            )
        return cls(
            cfg,
            path,
            denoiser=local_first(
                diffusers.SD3Transformer2DModel.from_pretrained, path, kw, subfolder="transformer"
            ),
            vae=vae,
            text_encoders=text_encoders,
            tokenizers=tokenizers,
            scheduler=diffusers.FlowMatchEulerDiscreteScheduler.from_config(config),
        )

    @property
    def t5_length(self) -> int:
        return int(self.cfg["t5_max_length"]) or DEFAULT_T5_LENGTH

    def encode_prompts(
        self, text_encoders: Sequence[Any], captions: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """{"prompt_embeds": [CLIP-L | CLIP-G padded ; T5] , "pooled_prompt_embeds": both pooled}."""
        captions = list(captions)
        hidden, pooled = [], []
        for te, tok, use in zip(
            text_encoders[:2], self.tokenizers[:2], self.text_encoder_use, strict=True
        ):
            ids = tok(
                captions,
                padding="max_length",
                max_length=tok.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            out = te(ids.to(_device(te)), output_hidden_states=True)
            pooled.append(out[0])  # text_embeds: the projected pooled output
            hidden.append(out.hidden_states[-1 - use.skip_last])
        clip = torch.cat(hidden, dim=-1)
        width = self.denoiser.config.joint_attention_dim
        if len(text_encoders) > 2:
            t5_tok = self.tokenizers[2]
            ids = t5_tok(
                captions,
                padding="max_length",
                max_length=self.t5_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            t5 = text_encoders[2](ids.to(_device(text_encoders[2])))[0]
        else:
            t5 = torch.zeros(
                len(captions), self.t5_length, width, device=clip.device, dtype=clip.dtype
            )
        clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return {
            "prompt_embeds": torch.cat([clip, t5.to(clip.dtype)], dim=-2),
            "pooled_prompt_embeds": torch.cat(pooled, dim=-1),
        }

    def predict(
        self,
        denoiser: Any,
        noised: Noised,
        embeds: Mapping[str, torch.Tensor],
        batch: Mapping[str, Any],
    ) -> torch.Tensor:
        x = noised.noisy
        return denoiser(
            hidden_states=x,
            timestep=noised.timesteps.to(x.dtype),
            encoder_hidden_states=embeds["prompt_embeds"].to(x.device, x.dtype),
            pooled_projections=embeds["pooled_prompt_embeds"].to(x.device, x.dtype),
            return_dict=False,
        )[0]

    def complete_parts(self, parts: dict[str, Any], for_saving: bool) -> dict[str, Any]:
        if "text_encoder_3" in parts:
            return parts
        if for_saving:  # a full model keeps the base T5 even when training ran without it
            from transformers import T5EncoderModel

            kw, tok_kw = load_kwargs(self.cfg)
            parts["text_encoder_3"] = local_first(
                T5EncoderModel.from_pretrained, self.path, kw, subfolder="text_encoder_3"
            )
            parts["tokenizer_3"] = local_first(
                t5_tokenizer_class().from_pretrained, self.path, tok_kw, subfolder="tokenizer_3"
            )
        else:
            parts |= {"text_encoder_3": None, "tokenizer_3": None}
        return parts

    def validation_call(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "guidance_scale": cfg["validation_guidance_scale"],
            "negative_prompt": cfg["validation_negative_prompt"] or None,
            "max_sequence_length": self.t5_length,
        }


def _device(module: Any) -> torch.device:
    return next(module.parameters()).device
