"""Quantising the frozen base weights (`base_model_precision`), so big models fit small GPUs.

  no_change  the parts stay in the run's precision
  int8       torchao int8 weight-only (Int8WeightOnlyConfig): every platform, the CPU too
  fp8        torchao float8 weight-only (Float8WeightOnlyConfig): CUDA GPUs with fp8 support
  nf4        bitsandbytes 4-bit NormalFloat (QLoRA's Linear4bit): CUDA only

Only linear layers are quantised, and only frozen ones: the denoiser when LoRA trains it, and
the text encoders unless a full fine-tune trains them. peft puts LoRA adapters on torchao int8
and bitsandbytes 4-bit layers (its torchao / bnb dispatchers); the adapters stay fp32. The
registry refuses the CUDA-only choices elsewhere, before a run starts.
"""

from __future__ import annotations

from typing import Any

import torch

PRECISIONS = ("no_change", "int8", "fp8", "nf4")


def quantize_frozen(module: torch.nn.Module, precision: str, compute_dtype: torch.dtype) -> None:
    """Quantise `module`'s linear layers in place (it must be frozen and on its device)."""
    if precision == "no_change":
        return
    if precision in ("int8", "fp8"):
        from torchao.quantization import (
            Float8WeightOnlyConfig,
            Int8WeightOnlyConfig,
            quantize_,
        )

        quantize_(
            module, Int8WeightOnlyConfig() if precision == "int8" else Float8WeightOnlyConfig()
        )
        return
    if precision == "nf4":
        _to_nf4(module, compute_dtype)
        return
    raise ValueError(f"unknown base_model_precision {precision!r}; use one of {PRECISIONS}")


def _to_nf4(module: torch.nn.Module, compute_dtype: torch.dtype) -> None:
    """Swap every nn.Linear for bitsandbytes' Linear4bit (NF4); the weights quantise as they
    move to the GPU, where they already are."""
    import bitsandbytes as bnb

    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.Linear):
            device = child.weight.device
            if device.type != "cuda":
                raise ValueError("base_model_precision=nf4 needs the model on a CUDA GPU")
            q = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=compute_dtype,
                quant_type="nf4",
            )
            q.weight = bnb.nn.Params4bit(
                child.weight.data.to("cpu"), requires_grad=False, quant_type="nf4"
            )
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, name, q.to(device))
        else:
            _to_nf4(child, compute_dtype)


def weight_kinds(module: Any) -> str:
    """What a module's weights are stored as: dtypes, and quantised tensor types by name."""
    kinds = set()
    for p in module.parameters():
        cls = type(p)
        data_cls = type(p.data) if isinstance(p, torch.nn.Parameter) else cls
        name = data_cls.__name__ if data_cls not in (torch.Tensor, torch.nn.Parameter) else ""
        if cls.__name__ == "Params4bit":
            name = "nf4"
        kinds.add(name or str(p.dtype).removeprefix("torch."))
    return "+".join(sorted(kinds))
