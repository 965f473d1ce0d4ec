"""Small pieces every family uses: local-first loading, the model path of a config, which
text-encoder outputs reach the loss, and text-encoder LoRA injection.

No family logic lives here; each family module (sd, sdxl, flux, sd3, ...) builds on these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TEXT_ENCODER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
LORA_INIT = {"default": True, "gaussian": "gaussian", "pissa": "pissa"}


@dataclass(frozen=True)
class TextEncoderUse:
    """Which outputs of one text encoder a family feeds to the denoiser: the prompt
    embeddings come from the final hidden state (skip_last=0, after the final layer norm) or
    from the hidden state `skip_last` layers before it; `pooled` means its pooled,
    final-layer output is used too. Prompt encoding reads these, and LoRA puts adapters only
    on the layers that reach the loss (an adapter on an unused layer gets no gradient: DDP
    refuses it, and it would be saved untrained)."""

    skip_last: int = 0
    pooled: bool = False

    def layers_reaching_loss(self, num_layers: int) -> list[int]:
        if self.pooled or self.skip_last == 0:
            return list(range(num_layers))
        return list(range(num_layers - self.skip_last))


def local_first(load: Any, path: str, kwargs: Mapping[str, Any], **extra: Any) -> Any:
    """Local folders load directly; a hub id is tried from the local cache first, so
    nothing is downloaded when the files are already there (or there is no network)."""
    if Path(path).expanduser().is_dir():
        return load(str(Path(path).expanduser()), **kwargs, **extra)
    try:
        return load(path, local_files_only=True, **kwargs, **extra)
    except OSError:
        return load(path, **kwargs, **extra)


def from_pretrained(cls: Any, path: str, kwargs: Mapping[str, Any], **extra: Any) -> Any:
    return local_first(cls.from_pretrained, path, kwargs, **extra)


def t5_tokenizer_class() -> type[PreTrainedTokenizerBase]:
    """transformers' T5 tokenizer read from tokenizer.json (no sentencepiece): T5TokenizerFast
    in transformers 4; transformers 5 keeps that name as an alias of its T5Tokenizer."""
    import transformers

    tokenizer: type[PreTrainedTokenizerBase]
    tokenizer = transformers.T5TokenizerFast  # type: ignore[attr-defined]  # not in 5's stubs
    return tokenizer


def resolve_model_path(cfg: Mapping[str, Any]) -> str:
    """The config's model: the generated demo folder, or pretrained_model_name_or_path."""
    if cfg["model_family"] == "demo":
        from trainer.demo_model import ensure_demo_model

        return str(ensure_demo_model())
    path = cfg["pretrained_model_name_or_path"]
    if not path:
        raise ValueError(
            f"model_family {cfg['model_family']} needs pretrained_model_name_or_path "
            "(a local diffusers folder or a hub id)"
        )
    return path


def add_text_encoder_adapter(te: Any, config: Any) -> None:
    """What transformers' add_adapter does, done with peft directly: transformers 5 refuses
    add_adapter with the peft 0.21 this project pins."""
    from peft import inject_adapter_in_model

    inject_adapter_in_model(config, te, adapter_name="default")
    te.peft_config = {"default": config}
