"""The string metadata saved in every LoRA and single-file model, in the keys other tools read.

  modelspec.*   the Stability AI model spec (model managers, ComfyUI, Forge/A1111 show
                title, architecture, date, resolution, prediction type)
  ss_*          the keys kohya sd-scripts writes and A1111/Forge's LoRA pages display (rank,
                alpha, steps, base model name and hash, datasets with image counts)
  tunerdeck.*   this project's own: family, base model, rank/alpha, format, the run's config

Values are strings (the safetensors metadata format). The base model's hash is the SHA-256 of
a single-file base model (what A1111 calls its AutoV2 hash when cut to 10 digits); a diffusers
folder or Hub id has no one-file hash, so it is left out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ARCHITECTURES = {
    "demo": "tunerdeck-demo",
    "sd1x": "stable-diffusion-v1",
    "sd2x": "stable-diffusion-v2-512",
    "sdxl": "stable-diffusion-xl-v1-base",
}
BASE_VERSIONS = {"demo": "sd_v1", "sd1x": "sd_v1", "sd2x": "sd_v2", "sdxl": "sdxl_base_v1-0"}
_HASHES: dict[tuple[str, int, float], str] = {}


def file_sha256(path: str) -> str | None:
    """SHA-256 of a single-file base model (once per process per file), None for folders."""
    p = Path(path).expanduser()
    if not p.is_file():
        return None
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime)
    if key not in _HASHES:
        h = hashlib.sha256()
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _prediction(models: Any) -> str:
    return str(models.noise_scheduler.config.get("prediction_type", "epsilon"))


def _architecture(family: str, models: Any) -> str:
    if family == "sd2x" and _prediction(models) == "v_prediction":
        return "stable-diffusion-v2-768-v"
    return ARCHITECTURES.get(family, family)


def _plain_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    plain = getattr(cfg, "plain", None)
    return plain() if callable(plain) else dict(cfg)


def _common(cfg: Mapping[str, Any], models: Any, title: str) -> dict[str, str]:
    # Read from the plain copy: describing the run must not count as honouring a field.
    p = _plain_config(cfg)
    family = str(p["model_family"])
    res = int(p.get("resolution", 0) or 0)
    base = str(models.path)
    meta = {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.title": title,
        "modelspec.date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "modelspec.resolution": f"{res}x{res}",
        "modelspec.prediction_type": "v" if _prediction(models) == "v_prediction" else "epsilon",
        "tunerdeck.family": family,
        "tunerdeck.base_model": base,
        "tunerdeck.config": json.dumps(p, default=str, sort_keys=True),
        "ss_sd_model_name": Path(base).name or base,
        "ss_base_model_version": BASE_VERSIONS.get(family, family),
        "ss_v2": str(family == "sd2x"),
        "ss_resolution": f"({res}, {res})",
        "ss_max_train_steps": str(p.get("max_train_steps", "")),
        "ss_epoch": str(p.get("num_train_epochs", "")),
    }
    datasets = getattr(models, "dataset_counts", None) or {}
    meta["ss_dataset_dirs"] = json.dumps(datasets)
    meta["ss_num_train_images"] = str(
        sum(d["img_count"] * d["n_repeats"] for d in datasets.values())
    )
    digest = file_sha256(base)
    if digest:
        meta["ss_new_sd_model_hash"] = digest
        meta["tunerdeck.base_model_sha256"] = digest
    return meta


def lora_metadata(
    cfg: Mapping[str, Any],
    models: Any,
    plain: Mapping[str, tuple[dict[str, Any], dict[str, Any]]],
    fmt: str,
    title: str,
) -> dict[str, str]:
    """Metadata of a saved LoRA; `plain`: part -> (state, adapter config) as saved (alpha =
    rank: the scale is folded into the weights)."""
    p = _plain_config(cfg)
    family = str(p["model_family"])
    unet_rank = int(plain["unet"][1]["r"]) if "unet" in plain else int(p["lora_rank"])
    meta = _common(cfg, models, title)
    meta |= {
        "modelspec.architecture": f"{_architecture(family, models)}/lora",
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models"
        if family == "sdxl"
        else "diffusers",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(unet_rank),
        "ss_network_alpha": str(unet_rank),
        "ss_text_encoder_lr": str(p.get("text_encoder_lr", "")),
        "ss_unet_lr": str(p.get("learning_rate", "")),
        "tunerdeck.rank": str(unet_rank),
        "tunerdeck.alpha": str(unet_rank),
        "tunerdeck.lora_format": fmt,
        "tunerdeck.trained_parts": ",".join(plain),
    }
    if p.get("model_type") == "lora" and p.get("lora_type") == "lycoris":
        # What kohya's LyCORIS network writes: A1111/Forge show the algorithm from these.
        args = {"algo": p["lycoris_algo"]}
        if p["lycoris_algo"] == "lokr":
            args |= {"factor": p["lokr_factor"], "decompose_both": p["lokr_decompose_both"]}
        meta["ss_network_module"] = "lycoris.kohya"
        meta["ss_network_args"] = json.dumps(args)
    return meta


def model_metadata(cfg: Mapping[str, Any], models: Any, title: str) -> dict[str, str]:
    """Metadata of a full single-file model."""
    family = str(_plain_config(cfg)["model_family"])
    return _common(cfg, models, title) | {
        "modelspec.architecture": _architecture(family, models),
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
    }
