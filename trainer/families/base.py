"""The interface a model family implements, and the pieces families share.

A family module defines one subclass of `Family`. The class side says what the family is
(the model_family values it serves, the diffusers pipeline class, the component names of its
denoiser and text encoders) and loads it; an instance is one loaded model, bound to the run's
config, and does every family-specific step of training:

  load            Family.load(cfg, path): a diffusers folder or a hub id in the local cache
  parts           denoiser, vae, text_encoders, tokenizers; trainable_text_encoders();
                  part_dtypes() says each part's precision, precisions() records it
  LoRA            add_lora(): adapters on the denoiser (and the text encoders whose layers
                  reach the loss), from the config's targets
  prompts         encode_prompts(text_encoders, captions) -> {name: batch-first tensor};
                  every row may be cached per caption while the text encoders are frozen
  latents         scale_latents(sample): the VAE sample in the denoiser's latent space
  noise           add_noise(latents, batch, fixed=None) -> Noised: noisy input, timesteps,
                  target and per-sample loss weights (DDPM epsilon / v-prediction, or flow
                  matching); `fixed` gives the noise and levels instead of drawing them
  forward         predict(denoiser, noised, embeds, batch): the denoiser with the family's
                  extra conditioning (SDXL time ids, Flux guidance and packed latents, SD3
                  pooled projections)
  loss            loss(pred, noised): the scalar loss of the batch
  save            save_weights(accelerator, denoiser, text_encoders, ema, out_dir): a LoRA
                  file (the pipeline's save_lora_weights, with metadata) or a full folder;
                  export_lora(modules, folder): the same LoRA file inside each checkpoint
  validation      pipeline(denoiser, text_encoders) and validation_call(cfg, prompt)

The `denoiser` and `text_encoders` passed to predict/encode_prompts/save_weights are the
modules the loop trains (possibly wrapped by accelerate); the instance's own attributes are
the unwrapped parts as loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

# Re-exported: families load through it.
from trainer.families._parts import local_first as local_first


class WrongFamilyError(ValueError):
    """The model at a path is not of the configured model_family."""


@dataclass
class Noised:
    """One batch after noising: what the denoiser sees and what its output is compared to."""

    noisy: torch.Tensor  # the denoiser's input, in the latent layout
    timesteps: torch.Tensor  # (batch,), in the family's timestep units
    target: torch.Tensor  # same shape as the denoiser's prediction
    # Per-sample loss weights, shape (batch,) or broadcastable to the per-element loss; None: 1.
    weights: torch.Tensor | None = None
    # Per-element loss mask in the prediction's (unpacked) layout, (batch, 1, h, w) in [0, 1]:
    # multiplies the per-element loss before its mean. None: every element counts.
    mask: torch.Tensor | None = None
    # Family-specific values the loss or forward needs (flow matching: sigmas).
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class FixedNoise:
    """Given noise and noise levels for add_noise instead of random draws (the eval loss)."""

    noise: torch.Tensor  # the latents' shape
    # (batch,) in [0, 1): the fraction of the schedule training's timestep sampling draws,
    # mapped to timesteps / sigmas the way training maps it.
    levels: torch.Tensor


def read_model_index(path: str) -> dict[str, Any] | None:
    """model_index.json of a hub id in the local cache (None: not there)."""
    if Path(path).expanduser().exists():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(path, "model_index.json")
    except Exception:  # not a repo id at all: the loader gives its own message
        return None
    return json.loads(Path(found).read_text()) if isinstance(found, str) else None


def found_family(path: str) -> tuple[tuple[str, ...], str]:
    """(the families the files at `path` say, what said so); ((), "") when unknown. Local
    folders are read as the registry reads them (registry.model_folders)."""
    from registry.model_folders import folder_family, index_family

    folder = Path(path).expanduser()
    if folder.is_dir():
        return folder_family(folder)
    index = read_model_index(path)
    return index_family(index) if index is not None else ((), "")


def load_kwargs(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(kwargs for weights, kwargs for tokenizers/schedulers) from revision and variant."""
    kw: dict[str, Any] = {}
    if cfg.get("revision"):
        kw["revision"] = cfg["revision"]
    if cfg.get("variant"):
        kw["variant"] = cfg["variant"]
    return kw, {k: v for k, v in kw.items() if k == "revision"}


def add_file_metadata(file: Path, extra: Mapping[str, str]) -> None:
    """Add string metadata to a safetensors file (rewritten in place through a temp file)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(file), framework="pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    meta.update(extra)
    tmp = file.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, file)


def replace_dir(tmp: Path, out_dir: Path) -> Path:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def temp_dir_beside(out_dir: Path) -> Path:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".weights-", dir=out_dir.parent))


class Family(ABC):
    """One model family; an instance is one loaded model of it, bound to a run's config."""

    # model_family values this class serves (sd1x and sd2x share one class).
    names: ClassVar[tuple[str, ...]]
    pipeline_class_name: ClassVar[str]
    denoiser_name: ClassVar[str]  # the pipeline component trained: "unet" or "transformer"
    text_encoder_names: ClassVar[tuple[str, ...]]
    # Which of text_encoder_names train when train_text_encoder is on (T5 never does).
    trainable_text_encoder_names: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        cfg: Mapping[str, Any],
        path: str,
        *,
        denoiser: Any,
        vae: Any,
        text_encoders: Sequence[Any],
        tokenizers: Sequence[Any],
        scheduler: Any,
    ) -> None:
        self.cfg = cfg
        self.family = str(cfg["model_family"])
        self.path = path
        self.denoiser = denoiser
        self.vae = vae
        self.text_encoders = list(text_encoders)
        self.tokenizers = list(tokenizers)
        self.scheduler = scheduler  # the model's own scheduler (inference and saving)
        # PiSSA only: the adapters' initial tensors per adapted module (see trainer.weights).
        self.initial_adapters: list[dict[str, torch.Tensor]] | None = None
        # What the run trained on, per dataset folder: set by the loop after the scan, read by
        # the saved files' metadata.
        self.dataset_counts: dict[str, dict[str, int]] = {}

    # ---- loading ---------------------------------------------------------------------------
    @classmethod
    def resolve_path(cls, cfg: Mapping[str, Any]) -> str:
        from trainer.families._parts import resolve_model_path

        return resolve_model_path(cfg)

    @classmethod
    def check_folder(cls, cfg: Mapping[str, Any], path: str) -> None:
        """Refuse a model of another family, naming what was found and what to do."""
        from registry.model_folders import wrong_family_message

        message = wrong_family_message(cfg["model_family"], path, *found_family(path))
        if message:
            raise WrongFamilyError(message)

    @classmethod
    @abstractmethod
    def load(cls, cfg: Mapping[str, Any], path: str) -> Family:
        """Load every part from a diffusers folder or a cached hub id (check_folder first)."""

    # ---- parts -----------------------------------------------------------------------------
    @property
    def pipeline_class(self) -> Any:
        import diffusers

        return getattr(diffusers, self.pipeline_class_name)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    def trainable_text_encoders(self) -> list[int]:
        """Indices (into text_encoders) of the encoders train_text_encoder trains."""
        if not self.cfg["train_text_encoder"]:
            return []
        return [
            i
            for i, name in enumerate(self.text_encoder_names)
            if name in self.trainable_text_encoder_names and i < len(self.text_encoders)
        ]

    def part_dtypes(self, weight_dtype: torch.dtype) -> dict[str, torch.dtype]:
        """Each part's dtype for a run whose mixed precision is `weight_dtype`: frozen parts may
        live in it, trained weights stay fp32 (LoRA adapters are cast back to fp32 after)."""
        lora = self.cfg["model_type"] == "lora"
        trained_te = set(self.trainable_text_encoders())
        dtypes = {
            "vae": weight_dtype,
            self.denoiser_name: weight_dtype if lora else torch.float32,
        }
        for i, name in enumerate(self.text_encoder_names[: len(self.text_encoders)]):
            dtypes[name] = torch.float32 if (i in trained_te and not lora) else weight_dtype
        return dtypes

    def place(self, device: torch.device, weight_dtype: torch.dtype) -> dict[str, str]:
        """Move every part to `device` in its part_dtypes precision; returns precisions()."""
        dtypes = self.part_dtypes(weight_dtype)
        self.vae.to(device, dtype=dtypes["vae"])
        self.denoiser.to(device, dtype=dtypes[self.denoiser_name])
        for name, te in zip(self.text_encoder_names, self.text_encoders, strict=False):
            te.to(device, dtype=dtypes[name])
        return self.precisions()

    def frozen_base_parts(self) -> dict[str, Any]:
        """The parts whose base weights never change (what base_model_precision quantises):
        the denoiser under LoRA, the text encoders unless a full fine-tune trains them."""
        lora = self.cfg["model_type"] == "lora"
        trained = set(self.trainable_text_encoders())
        parts = {self.denoiser_name: self.denoiser} if lora else {}
        for i, (name, te) in enumerate(
            zip(self.text_encoder_names, self.text_encoders, strict=False)
        ):
            if lora or i not in trained:
                parts[name] = te
        return parts

    def quantize_base(self, compute_dtype: torch.dtype) -> None:
        """Quantise the frozen base weights as base_model_precision says: after place(),
        before add_lora() (the adapters wrap the quantised layers and stay fp32)."""
        from trainer.families.quantize import quantize_frozen

        precision = self.cfg["base_model_precision"]
        if precision == "no_change":
            return
        if self.cfg["lora_init"] == "pissa" and self.cfg["model_type"] == "lora":
            raise ValueError(
                "lora_init=pissa rewrites the base weights, which a quantised base cannot "
                "hold: set base_model_precision to no_change or choose another lora_init"
            )
        for module in self.frozen_base_parts().values():
            quantize_frozen(module, precision, compute_dtype)

    def precisions(self) -> dict[str, str]:
        """What each part's weights are stored as now (recorded in the run folder):
        dtypes, or the quantised tensor type."""
        from trainer.families.quantize import weight_kinds

        parts = {"vae": self.vae, self.denoiser_name: self.denoiser}
        parts |= dict(zip(self.text_encoder_names, self.text_encoders, strict=False))
        return {name: weight_kinds(module) for name, module in parts.items()}

    def setup_training(self, device: torch.device, weight_dtype: torch.dtype) -> list[Any]:
        """Freeze what does not train, quantise the frozen base (base_model_precision), add
        the LoRA adapters and put every part on `device` in its precision; trained weights
        (adapters included) end up fp32. Returns the modules that train: the denoiser first,
        then the trained text encoders."""
        from diffusers.training_utils import cast_training_params

        lora = self.cfg["model_type"] == "lora"
        trained_te = set(self.trainable_text_encoders())
        self.vae.requires_grad_(False)
        self.denoiser.requires_grad_(not lora)
        for i, te in enumerate(self.text_encoders):
            te.requires_grad_(i in trained_te and not lora)
        quantised = self.cfg["base_model_precision"] != "no_change"
        if quantised:  # peft wraps the quantised layers, so they come first
            self.place(device, weight_dtype)
            self.quantize_base(weight_dtype)
        if lora:
            self.add_lora()  # before the cast: PiSSA decomposes the fp32 weights
        if not quantised:
            self.place(device, weight_dtype)
        trained = [self.denoiser, *(self.text_encoders[i] for i in sorted(trained_te))]
        if lora:
            for m in trained:  # adapters made beside quantised weights: onto the device too
                m.to(device)
            cast_training_params(trained, dtype=torch.float32)
        return trained

    def set_attention_backend(self, backend: str) -> None:
        """attention_backend: xformers, or PyTorch's scaled-dot-product attention (sdpa, the
        diffusers default); eager is honoured by the UNet families (see sd.py)."""
        if backend == "xformers":
            self.denoiser.enable_xformers_memory_efficient_attention()

    def cache_identity(self) -> str:
        """What, besides the model path and dtype, decides the prompt embeddings (so a cache
        made with other settings is never read)."""
        return ""

    @classmethod
    def default_dataset(cls) -> Path | None:
        """A built-in dataset used when the config lists none (the demo model's)."""
        return None

    # ---- LoRA ------------------------------------------------------------------------------
    @abstractmethod
    def add_lora(self) -> None:
        """peft adapters on the denoiser and, with train_text_encoder, the trainable encoders."""

    # ---- the training step -----------------------------------------------------------------
    @abstractmethod
    def encode_prompts(
        self, text_encoders: Sequence[Any], captions: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Embeddings of `captions`, every tensor batch-first (row i: caption i)."""

    def scale_latents(self, sample: torch.Tensor) -> torch.Tensor:
        """A VAE latent sample in the denoiser's space: (sample - shift) * scale."""
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return (sample - shift) * self.vae.config.scaling_factor

    @abstractmethod
    def add_noise(
        self, latents: torch.Tensor, batch: Mapping[str, Any], fixed: FixedNoise | None = None
    ) -> Noised: ...

    @abstractmethod
    def predict(
        self,
        denoiser: Any,
        noised: Noised,
        embeds: Mapping[str, torch.Tensor],
        batch: Mapping[str, Any],
    ) -> torch.Tensor: ...

    @abstractmethod
    def loss(self, pred: torch.Tensor, noised: Noised) -> torch.Tensor: ...

    # ---- saving and validation -------------------------------------------------------------
    @abstractmethod
    def save_weights(
        self,
        accelerator: Any,
        denoiser: Any,
        text_encoders: Sequence[Any],
        ema: Any,
        out_dir: Path,
    ) -> Path:
        """LoRA: one <run name>.safetensors with the run's metadata (trainer.weights /
        trainer.lora_metadata); full: a diffusers folder. Written beside, renamed into place."""

    def export_lora(self, modules: Sequence[Any], folder: Path) -> Path | None:
        """A checkpoint's LoRA: the file save_weights would write for the adapters of
        `modules` (the trained modules, unwrapped, denoiser first), written into `folder`
        (a checkpoint folder). Returns the file, or None where a family writes none."""
        return None

    @abstractmethod
    def pipeline(self, denoiser: Any, text_encoders: Sequence[Any], scheduler: Any = None) -> Any:
        """A diffusers pipeline over these parts (validation images, full saves)."""

    def validation_scheduler(self, cfg: Mapping[str, Any]) -> Any:
        """The scheduler validation images sample with (default: the model's own)."""
        return type(self.scheduler).from_config(self.scheduler.config)

    def validation_call(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the pipeline call for validation images (besides the prompt,
        size, count, steps and generator)."""
        return {"guidance_scale": cfg["validation_guidance_scale"]}
