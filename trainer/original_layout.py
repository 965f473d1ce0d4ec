"""Diffusers parts -> one state dict in the original (LDM / ComfyUI / A1111) single-file layout.

The inverse of diffusers' single-file conversion (diffusers.loaders.single_file_utils:
convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint,
convert_open_clip_checkpoint), written against the parts' configs rather than fixed block
counts, so it serves real SD 1.x / 2.x / SDXL models and the tiny test pipelines alike.
Loading the result with the single-file loader (trainer.single_file) gives back the same
tensors, bit for bit (the tests check it).

Layout facts (the original repositories' module names):
  UNet  model.diffusion_model.   time_embed.{0,2}, label_emb.0.{0,2} (SDXL), input_blocks.N.{0
        resnet | 1 transformer | 0.op downsample}, middle_block.{0,1,2}, output_blocks.N.{0
        resnet | 1 transformer | 1 or 2 .conv upsample}, out.{0,2}; resnets name in_layers.{0,2},
        emb_layers.1, out_layers.{0,3}, skip_connection.
  VAE   first_stage_model.       encoder.down.I.block.J / .downsample, mid.block_{1,2},
        mid.attn_1.{norm,q,k,v,proj_out} (1x1 convolutions), norm_out; the decoder's up.I is
        numbered from the bottom (diffusers' up_blocks reversed); nin_shortcut.
  CLIP  SD 1.x: cond_stage_model.transformer.text_model.*; SDXL's first encoder:
        conditioner.embedders.0.transformer.text_model.* (transformers' own names).
  OpenCLIP  SD 2.x: cond_stage_model.model.*; SDXL's second encoder: conditioner.embedders.1.model.*:
        token_embedding, positional_embedding, transformer.resblocks.I.{ln_1, ln_2,
        attn.in_proj_{weight,bias} (q, k, v stacked), attn.out_proj, mlp.c_fc, mlp.c_proj},
        ln_final, text_projection (transposed: hidden x projection).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

UNET = "model.diffusion_model."
VAE = "first_stage_model."
TEXT_PREFIXES = {
    "sd1x": ("cond_stage_model.transformer.",),
    "sd2x": ("cond_stage_model.model.",),
    "sdxl": ("conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."),
}
_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
)


def _rename(key: str, pairs: tuple[tuple[str, str], ...]) -> str:
    head, _, leaf = key.rpartition(".")
    parts = head.split(".")
    for new, old in pairs:
        if parts and parts[0] == new:
            parts[0] = old
    return ".".join([*parts, leaf])


def unet_to_original(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict:
    """A diffusers UNet2DConditionModel state dict in the original layout (no prefix)."""
    per = int(config["layers_per_block"])
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "add_embedding.linear_1": "label_emb.0.0",
        "add_embedding.linear_2": "label_emb.0.2",
        "class_embedding.linear_1": "label_emb.0.0",
        "class_embedding.linear_2": "label_emb.0.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    # Up blocks: upsample conv sits after the resnet (.1) or after the attention too (.2).
    up_has_attn = {
        int(k.split(".")[1]) for k in state if k.startswith("up_blocks.") and ".attentions." in k
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        p = module.split(".")
        if module in fixed:
            new = f"{fixed[module]}.{leaf}"
        elif p[0] == "down_blocks":
            b = int(p[1])
            if p[2] == "resnets":
                n = 1 + b * (per + 1) + int(p[3])
                new = f"input_blocks.{n}.0." + _rename(".".join(p[4:]) + "." + leaf, _RESNET)
            elif p[2] == "attentions":
                n = 1 + b * (per + 1) + int(p[3])
                new = f"input_blocks.{n}.1." + ".".join([*p[4:], leaf])
            else:  # downsamplers.0.conv
                n = 1 + b * (per + 1) + per
                new = f"input_blocks.{n}.0.op.{leaf}"
        elif p[0] == "mid_block":
            if p[1] == "resnets":
                n = 0 if p[2] == "0" else 2
                new = f"middle_block.{n}." + _rename(".".join(p[3:]) + "." + leaf, _RESNET)
            else:
                new = "middle_block.1." + ".".join([*p[3:], leaf])
        elif p[0] == "up_blocks":
            b = int(p[1])
            if p[2] == "resnets":
                n = b * (per + 1) + int(p[3])
                new = f"output_blocks.{n}.0." + _rename(".".join(p[4:]) + "." + leaf, _RESNET)
            elif p[2] == "attentions":
                n = b * (per + 1) + int(p[3])
                new = f"output_blocks.{n}.1." + ".".join([*p[4:], leaf])
            else:  # upsamplers.0.conv
                n = b * (per + 1) + per
                new = f"output_blocks.{n}.{2 if b in up_has_attn else 1}.conv.{leaf}"
        else:
            raise ValueError(f"no original-layout name for UNet tensor {key!r}")
        out[new] = value
    return out


_VAE_RESNET = (("conv_shortcut", "nin_shortcut"),)
_VAE_ATTN = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def vae_to_original(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict:
    """A diffusers AutoencoderKL state dict in the original layout (no prefix)."""
    n_up = len(config["up_block_types"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        p = module.split(".")
        side = p[0]
        if side in ("quant_conv", "post_quant_conv") or p[1] in ("conv_in", "conv_out"):
            new = key
        elif p[1] == "conv_norm_out":
            new = f"{side}.norm_out.{leaf}"
        elif p[1] == "down_blocks":
            i = int(p[2])
            if p[3] == "resnets":
                new = f"{side}.down.{i}.block.{p[4]}." + _rename(
                    ".".join(p[5:]) + "." + leaf, _VAE_RESNET
                )
            else:
                new = f"{side}.down.{i}.downsample.conv.{leaf}"
        elif p[1] == "up_blocks":
            i = n_up - 1 - int(p[2])
            if p[3] == "resnets":
                new = f"{side}.up.{i}.block.{p[4]}." + _rename(
                    ".".join(p[5:]) + "." + leaf, _VAE_RESNET
                )
            else:
                new = f"{side}.up.{i}.upsample.conv.{leaf}"
        elif p[1] == "mid_block":
            if p[2] == "resnets":
                new = f"{side}.mid.block_{int(p[3]) + 1}." + _rename(
                    ".".join(p[4:]) + "." + leaf, _VAE_RESNET
                )
            else:
                name = ".".join(p[4:])
                new = f"{side}.mid.attn_1.{_VAE_ATTN[name]}.{leaf}"
                if name != "group_norm" and leaf == "weight" and value.dim() == 2:
                    value = value[:, :, None, None]  # the original attention is 1x1 convs
        else:
            raise ValueError(f"no original-layout name for VAE tensor {key!r}")
        out[new] = value
    return out


def clip_to_original(state: Mapping[str, torch.Tensor]) -> dict:
    """transformers CLIPTextModel(WithProjection) -> the HF-CLIP names the original files use
    (always under text_model.; transformers 5 drops that level from CLIPTextModel)."""
    out = {}
    for key, value in state.items():
        if key == "text_projection.weight" or key.endswith("position_ids"):
            continue
        out[key if key.startswith("text_model.") else f"text_model.{key}"] = value
    return out


_OPENCLIP_LAYER = (
    ("self_attn.out_proj", "attn.out_proj"),
    ("layer_norm1", "ln_1"),
    ("layer_norm2", "ln_2"),
    ("mlp.fc1", "mlp.c_fc"),
    ("mlp.fc2", "mlp.c_proj"),
)


def open_clip_to_original(state: Mapping[str, torch.Tensor]) -> dict:
    """transformers CLIPTextModel(WithProjection) -> OpenCLIP names (SD 2.x, SDXL encoder 2)."""
    s = {k.removeprefix("text_model."): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {
        "token_embedding.weight": s["embeddings.token_embedding.weight"],
        "positional_embedding": s["embeddings.position_embedding.weight"],
        "ln_final.weight": s["final_layer_norm.weight"],
        "ln_final.bias": s["final_layer_norm.bias"],
    }
    if "text_projection.weight" in s:
        out["text_projection"] = s["text_projection.weight"].T.contiguous()
    layers = sorted({int(k.split(".")[2]) for k in s if k.startswith("encoder.layers.")})
    for i in layers:
        src, dst = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for leaf in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{leaf}"] = torch.cat(
                [s[f"{src}self_attn.{x}_proj.{leaf}"] for x in ("q", "k", "v")], dim=0
            )
            for new, old in _OPENCLIP_LAYER:
                out[f"{dst}{old}.{leaf}"] = s[f"{src}{new}.{leaf}"]
    return out


def pipeline_to_original(
    family: str,
    unet: Any,
    vae: Any,
    text_encoders: list[Any],
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """One original-layout state dict of a whole SD 1.x / 2.x / SDXL model (contiguous CPU
    tensors, in `dtype` if given)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in unet_to_original(unet.state_dict(), unet.config).items():
        out[UNET + k] = v
    for k, v in vae_to_original(vae.state_dict(), vae.config).items():
        out[VAE + k] = v
    prefixes = TEXT_PREFIXES["sd1x" if family == "demo" else family]
    for te, prefix in zip(text_encoders, prefixes, strict=True):
        convert = open_clip_to_original if prefix.endswith(".model.") else clip_to_original
        for k, v in convert(te.state_dict()).items():
            out[prefix + k] = v
    return {
        k: v.detach()
        .to("cpu", dtype if dtype is not None and v.is_floating_point() else v.dtype)
        .contiguous()
        .clone()
        for k, v in out.items()
    }
