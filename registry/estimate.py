"""Peak training memory and time per step of a config, without torch (pure arithmetic).

The model (all sizes in bytes, P = parameter counts):

    weights      = P_denoiser * b_w   (+ P_text * b_frozen unless text embeddings are cached)
                                      (+ P_vae * b_frozen unless latents are cached)
    trained      = T   (LoRA: rank * sum(in + out) of each targeted linear; full: P_denoiser)
    gradients    = T * 4              (trained parameters stay fp32)
    optimizer    = T * OPTIMIZER_BYTES[optimizer]
    ema          = T * 4              (full fine-tuning with use_ema)
    activations  = batch * ACT_BYTES_PER_PX[family] * pixels * act_scale * width
                   (act_scale: 0.5 under fp16/bf16/fp8 autocast, 1 in fp32;
                    * GC_FACTOR with gradient checkpointing; width = sqrt(P_denoiser /
                    published P_denoiser): activations follow channel width, P its square)
    peak         = (weights + trained-weight copy + gradients + optimizer + ema + activations)
                   * (1 + OVERHEAD) + CONTEXT_BYTES (CUDA context, allocator slack)
                   (on CPU, CPU_RUNTIME_BYTES instead of the CUDA context)

b_w is the storage of the denoiser's weights: 4 bytes in full fine-tuning (the loop trains it
in fp32), else the mixed-precision dtype (2 for fp16/bf16, 4 for "no"), or 1 / 0.5 when the
base model is quantized to int8/fp8 / nf4. Frozen encoders take the mixed-precision dtype.

Time per step = passes * forward FLOPs (passes: 3 in full training, whose backward costs two
forwards; 2 for LoRA, whose frozen weights need no weight gradients; +1 with checkpointing) * batch / (device TFLOPS * MFU). Forward FLOPs: transformers
(flux, sd3) 2 * P * tokens; UNets (sd1x/sd2x/sdxl/demo) a published per-image figure at
their native resolution scaled by the pixel count.

Parameter counts are read from the base model's safetensors headers when the files are at
hand (`count_parameters`), else taken from PUBLISHED_PARAMS (model cards / papers).
ACT_BYTES_PER_PX is calibrated against the memory the diffusers training scripts are
commonly reported to use (SD 1.5 LoRA at 512 px, batch 1, fp16: ~6-7 GB; SDXL LoRA at
1024 px with gradient checkpointing: ~12-16 GB; Flux LoRA at 1024 px, bf16, checkpointing,
cached embeddings: ~24+ GB, less with 8-bit/nf4 weights) and, for the demo, against
bench/estimate.py's measurement. Treat results as +-25% planning figures, not guarantees.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GB = 1024**3

# Published parameter counts: denoiser, text encoders (together), VAE.
PUBLISHED_PARAMS: dict[str, dict[str, float]] = {
    "demo": {"denoiser": 3.15e6, "text": 0.105e6, "vae": 0.317e6},
    "sd1x": {"denoiser": 859.5e6, "text": 123.1e6, "vae": 83.7e6},
    "sd2x": {"denoiser": 865.9e6, "text": 340.4e6, "vae": 83.7e6},
    "sdxl": {"denoiser": 2567.5e6, "text": 817.6e6, "vae": 83.7e6},  # CLIP-L + bigG
    "flux": {"denoiser": 11.9e9, "text": 4.88e9, "vae": 83.8e6},  # CLIP-L + T5-XXL encoder
    "sd3": {"denoiser": 8.06e9, "text": 5.69e9, "vae": 83.8e6},  # SD 3.5 large; CLIPs + T5
}
# LoRA parameters per unit of rank when only to_q/to_k/to_v/to_out.0 are targeted: the sum of
# (in + out) over those linears, counted from each architecture (e.g. SD 1.5: 16 transformer
# blocks, 14*d + 2*768 per block, d in 320/640/1280 -> 199,296).
LORA_PER_RANK: dict[str, float] = {
    "demo": 4992,
    "sd1x": 199_296,
    "sd2x": 207_488,
    "sdxl": 1_451_520,
    "flux": 1_167_360,
    "sd3": 739_328,
}
DEFAULT_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
# Activation bytes per training pixel per image at fp32 without checkpointing (calibrated,
# see the module docstring).
ACT_BYTES_PER_PX: dict[str, float] = {
    "demo": 500.0,  # bench/estimate.py: 64 -> 128 px adds less than its noise (~30 MB)
    "sd1x": 18_000.0,
    "sd2x": 18_000.0,
    "sdxl": 14_000.0,
    "flux": 16_000.0,
    "sd3": 14_000.0,
}
NATIVE_RESOLUTION = {"demo": 64, "sd1x": 512, "sd2x": 768, "sdxl": 1024, "flux": 1024, "sd3": 1024}
# Forward GFLOPs per image at the native resolution for the UNets (published/profiled figures).
UNET_GFLOPS = {"demo": 0.12, "sd1x": 400.0, "sd2x": 900.0, "sdxl": 3_000.0}
LATENT_DOWNSCALE, PATCH = 8, 2
TEXT_TOKENS = {"flux": 512, "sd3": 333}
GC_FACTOR = 0.25  # checkpointing keeps block inputs only, recomputes the rest
OVERHEAD = 0.10  # allocator fragmentation, temporary buffers
CONTEXT_BYTES = 0.5 * GB  # CUDA context and cuDNN/cuBLAS workspaces
# On CPU: what a training process adds beyond its imports whatever the model (lazily imported
# model code, autograd and oneDNN buffers, data loading): 251-303 MB over four runs of
# bench/estimate.py on tiny models (the same within a run, different between runs).
CPU_RUNTIME_BYTES = 265 * 1024**2
# Optimizer state per trained parameter: two fp32 moments for AdamW and schedule-free AdamW
# (z, exp_avg_sq); one 8-bit moment for Lion 8-bit; CAME one fp32 moment plus factored
# (row + column) statistics, which are negligible.
OPTIMIZER_BYTES = {
    "adamw": 8,
    "adamw8bit": 2,
    "adafactor": 4,
    "prodigy": 16,
    "lion": 4,
    "lion8bit": 1,
    "adamw_schedulefree": 8,
    "came": 4,
    "sgd": 0,
}
PRECISION_BYTES = {"no": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0}
QUANT_BYTES = {"int8": 1.0, "fp8": 1.0, "nf4": 0.5625}  # nf4: 4 bits + block scales
MFU = 0.35  # achieved share of peak FLOPs in diffusion training
DEFAULT_GPU_TFLOPS = 165.0  # an RTX 4090's dense bf16 peak, when the GPU is not known
CPU_TFLOPS = 0.05


@dataclass(frozen=True)
class Estimate:
    parts: dict[str, float]  # bytes per item (weights, trained, gradients, ...)
    peak_bytes: float
    step_s: float
    params: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / GB


def safetensors_params(path: Path) -> tuple[int, dict[str, list[int]]]:
    """(parameter count, name -> shape) from a .safetensors header; no tensor is read."""
    with path.open("rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        if size > 100 * 1024 * 1024:
            raise ValueError(f"{path}: not a safetensors file (header of {size} bytes)")
        header = json.loads(handle.read(size))
    header.pop("__metadata__", None)
    shapes = {name: list(info["shape"]) for name, info in header.items()}
    return sum(math.prod(s) for s in shapes.values()), shapes


_COMPONENTS = {
    "unet": "denoiser",
    "transformer": "denoiser",
    "text_encoder": "text",
    "text_encoder_2": "text",
    "text_encoder_3": "text",
    "vae": "vae",
}


def count_parameters(model_dir: Path, targets: tuple[str, ...] = DEFAULT_LORA_TARGETS) -> dict:
    """Parameter counts of a diffusers folder, by role, plus `lora_per_rank` for `targets`.
    Missing or unreadable files give an empty dict (the caller falls back to the table)."""
    if Path(model_dir).is_file():
        return _count_single_file(Path(model_dir), targets)
    counts: dict[str, float] = {}
    per_rank = 0
    for sub, role in _COMPONENTS.items():
        for file in sorted((Path(model_dir) / sub).glob("*.safetensors")):
            try:
                n, shapes = safetensors_params(file)
            except (OSError, ValueError, KeyError, struct.error):
                return {}
            counts[role] = counts.get(role, 0) + n
            if role == "denoiser":
                per_rank += sum(
                    s[0] + s[1]
                    for name, s in shapes.items()
                    if len(s) == 2 and any(name.endswith(f".{t}.weight") for t in targets)
                )
    if "denoiser" in counts:
        counts["lora_per_rank"] = per_rank
    return counts


def trained_parameters(cfg: Mapping[str, Any], params: Mapping[str, float] | None = None) -> float:
    """Parameters that get gradients: the whole denoiser in full fine-tuning, else the LoRA
    (rank * sum(in + out) of the targeted linears)."""
    family = str(cfg["model_family"])
    if cfg["model_type"] == "full":
        if params and params.get("denoiser"):
            return float(params["denoiser"])
        return PUBLISHED_PARAMS.get(family, PUBLISHED_PARAMS["sd1x"])["denoiser"]
    per_rank = (params or {}).get("lora_per_rank") or LORA_PER_RANK.get(family, 0)
    lora = float(cfg["lora_rank"]) * float(per_rank)
    # LyCORIS LoHa trains two rank-r pairs per layer; a LoKr is smaller than the LoRA count.
    if cfg.get("lora_type") == "lycoris" and cfg.get("lycoris_algo") == "loha":
        return 2 * lora
    return lora


# Key prefixes of single-file checkpoints (the original Stable Diffusion / Flux layouts).
_SINGLE_FILE_ROLES = (
    ("model.diffusion_model.", "denoiser"),
    ("first_stage_model.", "vae"),
    ("cond_stage_model.", "text"),
    ("conditioner.", "text"),
    ("text_encoders.", "text"),
)


def _count_single_file(path: Path, targets: tuple[str, ...]) -> dict:
    """Counts of a one-file checkpoint by key prefix; keys without a known prefix (a Flux or
    SD3 transformer-only file) count as the denoiser."""
    try:
        _, shapes = safetensors_params(path)
    except (OSError, ValueError, KeyError, struct.error):
        return {}
    counts: dict[str, float] = {}
    per_rank = 0
    for name, shape in shapes.items():
        role = next((r for prefix, r in _SINGLE_FILE_ROLES if name.startswith(prefix)), "denoiser")
        counts[role] = counts.get(role, 0) + math.prod(shape)
        lora_target = any(name.endswith(f".{t}.weight") for t in targets)
        if role == "denoiser" and len(shape) == 2 and lora_target:
            per_rank += shape[0] + shape[1]
    if "denoiser" in counts:
        counts["lora_per_rank"] = per_rank
    return counts


def _gpu_tflops(gpu_names: list[str]) -> float:
    table = {"h200": 990, "h100": 990, "a100": 312, "l40": 362, "4090": 165, "3090": 71, "a10": 125}
    for name in gpu_names:
        for key, tflops in table.items():
            if key in name.lower():
                return float(tflops)
    return DEFAULT_GPU_TFLOPS


def estimate(
    cfg: Mapping[str, Any],
    params: Mapping[str, float] | None = None,
    *,
    gpu_names: list[str] | None = None,
    device: str = "cuda",
) -> Estimate:
    """Peak memory (bytes) and seconds per optimizer step of effective config `cfg`."""
    family = str(cfg["model_family"])
    known = dict(PUBLISHED_PARAMS.get(family, PUBLISHED_PARAMS["sd1x"]))
    notes: list[str] = []
    if params:
        known.update({k: float(v) for k, v in params.items() if k != "lora_per_rank"})
    else:
        notes.append(f"model size: published figures for {family}")
    full = cfg["model_type"] == "full"
    precision = PRECISION_BYTES.get(str(cfg["mixed_precision"]), 4.0)
    quant = QUANT_BYTES.get(str(cfg.get("base_model_precision", "no_change")))
    weight_bytes = 4.0 if full else (quant or precision)
    p_den, p_text, p_vae = known["denoiser"], known["text"], known["vae"]
    trained = trained_parameters(cfg, params)
    targets = tuple(cfg.get("lora_target_modules") or DEFAULT_LORA_TARGETS)
    if not full and set(targets) != set(DEFAULT_LORA_TARGETS):
        notes.append("LoRA targets beyond attention: trained size is a lower bound")
    frozen = precision
    parts = {
        "weights": p_den * weight_bytes,
        "text encoders": 0.0 if cfg["cache_text_embeddings"] else p_text * frozen,
        "vae": 0.0 if cfg["cache_latents"] else p_vae * (4.0 if family == "sdxl" else frozen),
        "trained": 0.0 if full else trained * 4.0,  # LoRA weights are separate fp32 tensors
        "gradients": trained * 4.0,
        "optimizer": trained * OPTIMIZER_BYTES.get(str(cfg["optimizer"]), 8),
        "ema": trained * 4.0 if (full and cfg.get("use_ema")) else 0.0,
    }
    resolution = int(cfg["resolution"])
    batch = int(cfg["train_batch_size"])
    act_scale = 1.0 if precision == 4.0 else 0.5
    if cfg["gradient_checkpointing"]:
        act_scale *= GC_FACTOR
    act_per_px = ACT_BYTES_PER_PX.get(family, ACT_BYTES_PER_PX["sd1x"])
    # Activations grow with the channel width, parameters with its square: a model of another
    # size than the published one (a tiny test model, SD 3.5 medium) scales by the root.
    reference = PUBLISHED_PARAMS.get(family, PUBLISHED_PARAMS["sd1x"])["denoiser"]
    width = math.sqrt(p_den / reference) if p_den > 0 else 1.0
    parts["activations"] = batch * act_per_px * resolution * resolution * act_scale * width
    context = CONTEXT_BYTES if device == "cuda" else CPU_RUNTIME_BYTES
    peak = sum(parts.values()) * (1 + OVERHEAD) + context

    native = NATIVE_RESOLUTION.get(family, 512)
    if family in UNET_GFLOPS:
        forward = UNET_GFLOPS[family] * 1e9 * (resolution / native) ** 2
    else:
        tokens = (resolution // (LATENT_DOWNSCALE * PATCH)) ** 2 + TEXT_TOKENS.get(family, 256)
        forward = 2 * p_den * tokens
    # Backward costs two forwards in full training (activation and weight gradients), one
    # in LoRA (frozen weights need no gradient); checkpointing adds one more forward.
    passes = (3 if full else 2) + (1 if cfg["gradient_checkpointing"] else 0)
    tflops = _gpu_tflops(gpu_names or []) if device == "cuda" else CPU_TFLOPS
    step_s = passes * forward * batch * int(cfg["gradient_accumulation_steps"])
    step_s /= tflops * 1e12 * (MFU if device == "cuda" else 1.0)
    return Estimate(parts=parts, peak_bytes=peak, step_s=step_s, params=known, notes=notes)


def checkpoint_bytes(values: Mapping[str, Any], params: Mapping[str, float] | None = None) -> float:
    """One accelerate checkpoint: trained weights (fp32) + optimizer states (+ EMA), plus
    the final weights file of the same size class."""
    trained = trained_parameters(values, params)
    per_param = 4 + OPTIMIZER_BYTES.get(str(values["optimizer"]), 8)
    if values["model_type"] == "full" and values.get("use_ema"):
        per_param += 4
    return trained * per_param + 16 * 1024**2  # scheduler, RNG states, metadata


def planned_checkpoints(values: Mapping[str, Any]) -> int:
    """How many checkpoints exist at once at most: the periodic ones (capped by the total
    limit) plus the one written at the end."""
    steps, every = int(values["max_train_steps"]), int(values["checkpointing_steps"])
    periodic = steps // every if every > 0 and steps > 0 else 0
    per_epochs = int(values.get("checkpoint_epoch_interval") or 0)
    if per_epochs > 0 and steps <= 0:  # a run set in epochs: its epoch-end ones too (a run
        # set in steps has an epoch count that depends on the datasets: not known here)
        periodic += int(values["num_train_epochs"]) // per_epochs
    limit = int(values.get("checkpoints_total_limit") or 0)
    if limit > 0:
        periodic = min(periodic, limit)
    return periodic + 1


def run_disk_bytes(values: Mapping[str, Any], params: Mapping[str, float] | None = None) -> float:
    """Disk a run needs at most: its planned checkpoints plus the final weights."""
    final = trained_parameters(values, params) * 4
    return planned_checkpoints(values) * checkpoint_bytes(values, params) + final


# Changes a user can make, each as (label, config update), tried to find the biggest savers.
def _candidates(cfg: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if not cfg["gradient_checkpointing"]:
        out.append(("turn on gradient checkpointing", {"gradient_checkpointing": True}))
    if str(cfg["mixed_precision"]) == "no":
        out.append(("use bf16 mixed precision", {"mixed_precision": "bf16"}))
    if str(cfg["optimizer"]) in ("adamw", "prodigy"):
        out.append(("use the 8-bit AdamW optimizer", {"optimizer": "adamw8bit"}))
    if not cfg["cache_text_embeddings"]:
        out.append(("cache text embeddings", {"cache_text_embeddings": True}))
    if not cfg["cache_latents"]:
        out.append(("cache latents", {"cache_latents": True}))
    if int(cfg["train_batch_size"]) > 1:
        out.append(("batch size 1", {"train_batch_size": 1}))
    if cfg["model_type"] == "full":
        out.append(("train a LoRA instead of the full model", {"model_type": "lora"}))
    if str(cfg.get("base_model_precision", "no_change")) in ("no_change", "int8", "fp8"):
        out.append(("quantize the base model to nf4", {"base_model_precision": "nf4"}))
    if int(cfg["resolution"]) > 512:
        out.append(("train at 512 px", {"resolution": 512}))
    return out


def biggest_savings(
    cfg: Mapping[str, Any], params: Mapping[str, float] | None = None, n: int = 2
) -> list[tuple[str, float]]:
    """The `n` single changes that lower the peak the most: (label, bytes saved)."""
    base = estimate(cfg, params).peak_bytes
    saved = [
        (label, base - estimate({**cfg, **change}, params).peak_bytes)
        for label, change in _candidates(cfg)
    ]
    return sorted((s for s in saved if s[1] > 0), key=lambda s: -s[1])[:n]


__all__ = [
    "Estimate",
    "biggest_savings",
    "checkpoint_bytes",
    "count_parameters",
    "estimate",
    "planned_checkpoints",
    "run_disk_bytes",
    "safetensors_params",
    "trained_parameters",
]
