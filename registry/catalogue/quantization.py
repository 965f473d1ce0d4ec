"""Model tab, "Base model" section: storing the frozen base weights quantised
(base_model_precision), so that large models fit GPUs with less memory."""

from __future__ import annotations

from registry.catalogue._rules import CUDA_ONLY
from registry.field import Choice, ConfigField, FieldType, Importance

FIELDS: tuple[ConfigField, ...] = (
    ConfigField(
        name="base_model_precision",
        type=FieldType.CHOICE,
        default="no_change",
        tab="model",
        section="Base model",
        importance=Importance.ADVANCED,
        label="Base model precision",
        choices=(
            Choice(
                value="no_change",
                label="No change",
                help="The base weights stay in the run's precision (mixed_precision).",
            ),
            Choice(
                value="int8",
                label="int8 (torchao)",
                help="8-bit integer weights, dequantised on the fly: about half the memory of "
                "bf16. Runs on every device, the CPU included.",
                requires="torchao",
            ),
            Choice(
                value="fp8",
                label="fp8 (torchao)",
                help="8-bit float weights: about half the memory of bf16, faster than int8 on "
                "GPUs with fp8 support (Ada, Hopper and newer).",
                platforms=CUDA_ONLY,
                requires="torchao",
            ),
            Choice(
                value="nf4",
                label="nf4 (bitsandbytes)",
                help="4-bit NormalFloat weights as in QLoRA: about a quarter of bf16's memory, "
                "at some cost in quality and speed.",
                platforms=CUDA_ONLY,
                requires="bitsandbytes",
            ),
        ),
        help="Store the frozen base weights quantised: the denoiser while LoRA trains it, and "
        "the text encoders unless a full fine-tune trains them (T5 is the big one). The "
        "trained LoRA weights stay fp32, and the saved LoRA applies to the unquantised base "
        "model as usual. Only linear layers are quantised. The run folder records each part's "
        "precision.",
        hint="int8 lets Flux dev LoRA training fit in 24 GB.",
        width=4,
    ),
)
