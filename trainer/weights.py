"""What a checkpoint holds for the models, and the final weights of a run.

LoRA checkpoints hold only the adapter tensors (not the frozen base model); the final LoRA
is written with the pipeline's save_lora_weights so diffusers' load_lora_weights reads it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

SAVE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def register_state_hooks(accelerator: Any, lora: bool) -> None:
    """For LoRA, save/load only the adapter weights through accelerate's state hooks."""
    if not lora:
        return
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    def save_hook(models: list[Any], weights: list[Any], output_dir: str) -> None:
        if accelerator.is_main_process:
            for i, model in enumerate(models):
                state = get_peft_model_state_dict(accelerator.unwrap_model(model))
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in state.items()},
                    os.path.join(output_dir, f"adapter_{i}.safetensors"),
                )
        weights.clear()  # nothing else of the models goes into the checkpoint

    def load_hook(models: list[Any], input_dir: str) -> None:
        for i, model in enumerate(models):
            state = load_file(os.path.join(input_dir, f"adapter_{i}.safetensors"))
            result = set_peft_model_state_dict(accelerator.unwrap_model(model), state)
            if getattr(result, "unexpected_keys", None):
                raise RuntimeError(f"checkpoint adapter {i} does not match the model")
        models.clear()

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def _cast(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", dtype).contiguous() for k, v in state.items()}


def save_final_weights(
    cfg: Mapping[str, Any],
    models: Any,
    accelerator: Any,
    unet: Any,
    text_encoders: list[Any],
    ema: Any,
    out_dir: Path,
) -> Path:
    """LoRA: pytorch_lora_weights.safetensors; full: a diffusers pipeline folder.
    Written to a temp folder beside `out_dir` and renamed into place."""
    dtype = SAVE_DTYPES[cfg["save_precision"]]
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".weights-", dir=out_dir.parent))
    try:
        u = accelerator.unwrap_model(unet)
        tes = [accelerator.unwrap_model(t) for t in text_encoders]
        if cfg["model_type"] == "lora":
            from diffusers.utils import convert_state_dict_to_diffusers
            from peft.utils import get_peft_model_state_dict

            def lora_state(m: Any) -> dict[str, torch.Tensor]:
                return _cast(convert_state_dict_to_diffusers(get_peft_model_state_dict(m)), dtype)

            layers: dict[str, Any] = {"unet_lora_layers": lora_state(u)}
            if cfg["train_text_encoder"]:
                layers["text_encoder_lora_layers"] = lora_state(tes[0])
                if models.is_sdxl:
                    layers["text_encoder_2_lora_layers"] = lora_state(tes[1])
            models.pipeline_class.save_lora_weights(str(tmp), safe_serialization=True, **layers)
        else:
            if ema is not None:
                ema.copy_to(u.parameters())
            pipe = models.pipeline(u, tes, models.noise_scheduler)
            pipe.to(dtype=dtype)
            pipe.save_pretrained(str(tmp), safe_serialization=True)
            pipe.to(dtype=torch.float32)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
