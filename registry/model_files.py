"""What a model file is, read from its safetensors header alone (stdlib only: no torch).

The UI process shows these facts when a file is chosen, validation refuses a file of the
wrong kind before a run starts, and the trainer checks the family again before loading, so
all three read files through `inspect_model_file` and agree.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON (tensor name
-> dtype, shape, data_offsets; plus an optional "__metadata__" of strings), then the tensor
data. Reading the header costs one small read whatever the file's size.

Families are told apart by the key prefixes of the original (LDM / ComfyUI) layout:
  sd1x   cond_stage_model.transformer.*            (OpenAI CLIP ViT-L)
  sd2x   cond_stage_model.model.*                  (OpenCLIP ViT-H)
  sdxl   conditioner.embedders.0.transformer.* and conditioner.embedders.1.model.*, and the
         UNet's label_emb (size conditioning)
A file holding only a UNet is judged by its cross-attention width (768: SD 1.x, 1024: SD 2.x,
2048: SDXL) and label_emb. Flux, SD3, LoRA and VAE-only files are recognised so that a
mismatch names what the file really is.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.user_paths import user_path

# Files the base-model picker offers, and those refused unless allow_pickle_checkpoints.
MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# A header larger than this is not a model header (real ones are well under 10 MB).
MAX_HEADER_BYTES = 100 * 1024 * 1024

UNET_PREFIX = "model.diffusion_model."
SD_FAMILIES = ("sd1x", "sd2x", "sdxl")
FAMILY_NAMES = {
    "sd1x": "Stable Diffusion 1.x",
    "sd2x": "Stable Diffusion 2.x",
    "sdxl": "Stable Diffusion XL",
    "sdxl_refiner": "SDXL refiner",
    "flux": "Flux",
    "sd3": "Stable Diffusion 3",
    "lora": "LoRA",
    "vae": "VAE",
}


class ModelFileError(ValueError):
    """A file that is not a readable model file; the message says what to do."""


@dataclass
class ModelFileFacts:
    """What the header of one model file says."""

    path: str
    size_bytes: int
    kind: str  # a FAMILY_NAMES key, or "unknown"
    tensors: int
    unet_parameters: int
    v_prediction: bool | None  # None: the file does not say
    dtype: str  # the most common tensor dtype
    has_text_encoders: bool
    has_vae: bool
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def family(self) -> str | None:
        """The model_family this file is, if it is a base model the trainer can load."""
        return self.kind if self.kind in SD_FAMILIES else None

    @property
    def label(self) -> str:
        return FAMILY_NAMES.get(self.kind, "an unrecognised model")

    def summary(self) -> dict[str, str]:
        """Human-readable facts (what the UI shows)."""
        if self.v_prediction is None:
            vpred = "not stated in the file (set prediction_type if it is a v-model)"
        else:
            vpred = "yes" if self.v_prediction else "no"
        return {
            "Detected": self.label,
            "UNet parameters": _human_count(self.unet_parameters),
            "v-prediction": vpred,
            "Size": _human_bytes(self.size_bytes),
            "Weights": self.dtype,
            "Contains": ", ".join(
                p
                for p, there in (
                    ("UNet", self.unet_parameters > 0),
                    ("text encoders", self.has_text_encoders),
                    ("VAE", self.has_vae),
                )
                if there
            )
            or "no base-model parts",
        }


def read_header(path: str | Path) -> tuple[dict[str, Any], dict[str, str], int]:
    """(tensor entries, __metadata__, file size) of a safetensors file; ModelFileError if the
    file is not one or is cut short (the header names more data than the file holds)."""
    p = user_path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ModelFileError(f"{p} is not a safetensors file: it is only {size} bytes")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > MAX_HEADER_BYTES or n > size - 8:
                raise ModelFileError(
                    f"{p} is not a safetensors file (its first bytes are not a safetensors "
                    "header): choose a .safetensors model file, or a diffusers folder"
                )
            raw = f.read(n)
    except OSError as exc:
        raise ModelFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(
            f"{p} is not a safetensors file (its header is not valid JSON): choose a "
            ".safetensors model file, or a diffusers folder"
        ) from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{p} is not a safetensors file (its header is not a table)")
    meta = header.pop("__metadata__", None) or {}
    data_bytes = size - 8 - n
    needed = 0
    for name, entry in header.items():
        try:
            _start, end = entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise ModelFileError(f"{p} is not a valid safetensors file (entry {name!r})") from None
        needed = max(needed, int(end))
    if needed > data_bytes:
        raise ModelFileError(
            f"{p} is truncated: its header describes {_human_bytes(needed)} of weights but the "
            f"file holds {_human_bytes(max(data_bytes, 0))}; the download or copy was cut short, "
            "so fetch the file again"
        )
    return header, {str(k): str(v) for k, v in meta.items()}, size


def inspect_model_file(path: str | Path, *, allow_pickle: bool = False) -> ModelFileFacts:
    """The facts of one model file, from its header only. Pickle files (.ckpt, ...) are
    refused unless `allow_pickle` (their contents cannot be read without running them)."""
    p = user_path(path)
    if p.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ModelFileError(pickle_refusal(str(p)))
        size = p.stat().st_size if p.is_file() else 0
        return ModelFileFacts(str(p), size, "unknown", 0, 0, None, "?", False, False)
    header, meta, size = read_header(p)
    return facts_from_header(str(p), header, meta, size)


def pickle_refusal(path: str) -> str:
    return (
        f"{path} is a pickle checkpoint: loading one runs whatever code it holds, so it is "
        "refused by default. Convert it to .safetensors once (e.g. with diffusers "
        "from_single_file(...).save_pretrained(folder), or a safetensors converter) and "
        "choose the result, or, if you trust its source, set allow_pickle_checkpoints"
    )


def detect_kind(keys: set[str] | dict[str, Any], shapes: dict[str, list[int]]) -> str:
    """The FAMILY_NAMES key of a set of tensor names (with their shapes), or "unknown"."""
    names = list(keys)

    def any_prefix(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in names)

    if any(k.startswith(("lora_unet_", "lora_te")) for k in names) or any(
        ".lora_A." in k or ".lora_down." in k or ".lora.down." in k for k in names[:200]
    ):
        return "lora"
    if any_prefix("conditioner.embedders.1.model."):
        return "sdxl"
    if any_prefix("conditioner.embedders.0.model."):
        return "sdxl_refiner"
    if any_prefix("cond_stage_model.model."):
        return "sd2x"
    if any_prefix("cond_stage_model.transformer."):
        return "sd1x"
    if any(".joint_blocks." in k or k.startswith("joint_blocks.") for k in names):
        return "sd3"
    if any(".double_blocks." in k or k.startswith("double_blocks.") for k in names):
        return "flux"
    unet = [k for k in names if k.startswith(UNET_PREFIX)]
    if unet:
        if any(k.startswith(UNET_PREFIX + "label_emb.") for k in unet):
            return "sdxl"
        width = next(
            (shapes[k][-1] for k in unet if k.endswith("attn2.to_k.weight") and k in shapes),
            None,
        )
        return {768: "sd1x", 1024: "sd2x", 2048: "sdxl"}.get(width or 0, "unknown")
    if any(k.startswith(("encoder.down.", "first_stage_model.encoder.")) for k in names):
        return "vae"
    return "unknown"


def facts_from_header(
    path: str, header: dict[str, Any], meta: dict[str, str], size: int
) -> ModelFileFacts:
    shapes = {k: list(v.get("shape", [])) for k, v in header.items() if isinstance(v, dict)}
    kind = detect_kind(header, shapes)
    unet_params = sum(_numel(s) for k, s in shapes.items() if k.startswith(UNET_PREFIX))
    dtypes: dict[str, int] = {}
    for v in header.values():
        if isinstance(v, dict):
            dtypes[str(v.get("dtype"))] = dtypes.get(str(v.get("dtype")), 0) + 1
    dtype = max(dtypes, key=lambda name: dtypes[name]) if dtypes else "?"
    return ModelFileFacts(
        path=path,
        size_bytes=size,
        kind=kind,
        tensors=len(header),
        unet_parameters=unet_params,
        v_prediction=_v_prediction(header, meta),
        dtype=dtype,
        has_text_encoders=any(k.startswith(("cond_stage_model.", "conditioner.")) for k in header),
        has_vae=any(k.startswith("first_stage_model.") for k in header),
        metadata=meta,
    )


def _v_prediction(header: dict[str, Any], meta: dict[str, str]) -> bool | None:
    """Only what the file states: ComfyUI's `v_pred` marker key, or modelspec metadata."""
    if "v_pred" in header:
        return True
    stated = (meta.get("modelspec.prediction_type") or meta.get("prediction_type") or "").lower()
    if stated:
        return stated.startswith("v")
    return None


def family_mismatch(facts: ModelFileFacts, model_family: str) -> str | None:
    """One sentence when the file is not a base model of `model_family` (None: it is, or the
    header cannot tell)."""
    if facts.kind == "unknown" or facts.kind == model_family:
        return None
    if facts.kind in SD_FAMILIES:
        return (
            f"model_family is {model_family} but {facts.path} is a {facts.label} checkpoint "
            f"(read from its tensor names): set model_family to {facts.kind}, or choose a "
            f"{FAMILY_NAMES.get(model_family, model_family)} file"
        )
    what = {
        "lora": "a LoRA, not a base model (use it as init_lora to continue training it)",
        "vae": "a VAE only (use it as pretrained_vae_model_name_or_path)",
    }.get(facts.kind, f"a {facts.label} checkpoint")
    return (
        f"{facts.path} is {what}; model_family {model_family} needs a "
        f"{FAMILY_NAMES.get(model_family, model_family)} checkpoint"
    )


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _human_count(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit} ({n:,})"
    return f"{n:,}"


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def lora_rank_of(header: dict[str, Any]) -> int | None:
    """The rank of a LoRA file's adapters (None: not a LoRA), from its down / A matrices: the
    denoiser's first (kohya lora_unet_*, diffusers unet.*), else any."""
    ranks: list[tuple[bool, int]] = []
    for k, v in header.items():
        if not isinstance(v, dict) or not v.get("shape"):
            continue
        if k.endswith((".lora_down.weight", ".lora_A.weight", ".lora.down.weight")):
            denoiser = k.startswith(("lora_unet_", "unet.", "transformer."))
            ranks.append((not denoiser, int(v["shape"][0])))
    return min(ranks)[1] if ranks else None
