"""Validation tab: sample images rendered during training to watch progress."""

from __future__ import annotations

from typing import Any

from registry.catalogue._rules import DDPM_FAMILIES, when
from registry.field import Choice, ConfigField, Effect, FieldType, Importance, Op

TAB = "validation"
SECTIONS = ("Prompts", "When", "Sampling")

_validation_on = when(
    "validation_steps",
    Op.GT,
    0,
    effect=Effect.DISABLE,
    reason="validation is off (validation_steps is 0)",
)


def _field(**kwargs: Any) -> ConfigField:
    """Every validation setting except validation_steps itself greys out while it is off."""
    if kwargs["name"] != "validation_steps":
        kwargs["dependencies"] = (_validation_on,)
    return ConfigField(tab=TAB, **kwargs)


FIELDS: tuple[ConfigField, ...] = (
    _field(
        name="validation_prompt",
        type=FieldType.TEXT,
        default="a red circle on a blue background",
        section="Prompts",
        importance=Importance.ESSENTIAL,
        label="Validation prompts",
        help="Prompts rendered at every validation, one per line. Include your trigger word "
        "and a few prompts outside the training data to spot overfitting.",
        widget="textarea",
        width=12,
    ),
    _field(
        name="validation_negative_prompt",
        type=FieldType.TEXT,
        default="",
        section="Prompts",
        importance=Importance.COMMON,
        model_families=(*DDPM_FAMILIES, "sd3"),  # Flux has no classifier-free guidance
        label="Negative prompt",
        help="Negative prompt used for every validation prompt (classifier-free guidance steers "
        "away from it). Empty uses no negative prompt.",
        placeholder="blurry, low quality",
        widget="textarea",
        width=12,
    ),
    _field(
        name="validation_steps",
        type=FieldType.INT,
        default=100,
        section="When",
        importance=Importance.ESSENTIAL,
        label="Validate every N steps",
        minimum=0,
        maximum=100_000_000,
        help="Render the validation prompts every N optimizer steps, and once at the end. "
        "0 turns validation off (faster, but you see nothing until you test the weights).",
        width=4,
    ),
    _field(
        name="validation_at_start",
        type=FieldType.BOOL,
        default=False,
        section="When",
        importance=Importance.COMMON,
        label="Validate before training",
        help="Also render the prompts before the first step, as a 'before' picture to compare "
        "against.",
        width=4,
    ),
    _field(
        name="num_validation_images",
        type=FieldType.INT,
        default=1,
        section="When",
        importance=Importance.COMMON,
        label="Images per prompt",
        minimum=1,
        maximum=16,
        help="Images rendered per prompt at each validation, each with the next seed.",
        width=4,
    ),
    _field(
        name="validation_inference_steps",
        type=FieldType.INT,
        default=20,
        section="Sampling",
        importance=Importance.COMMON,
        label="Sampling steps",
        minimum=1,
        maximum=200,
        help="Denoising steps per validation image. 20-30 is enough to judge progress; more "
        "only costs time.",
        width=4,
    ),
    _field(
        name="validation_guidance_scale",
        type=FieldType.FLOAT,
        default=7.5,
        section="Sampling",
        importance=Importance.COMMON,
        label="Guidance scale (CFG)",
        minimum=0.0,
        maximum=50.0,
        help="Classifier-free guidance strength. 5-8 for SD 1.x/SDXL; 1 turns guidance off.",
        width=4,
    ),
    _field(
        name="validation_guidance_rescale",
        type=FieldType.FLOAT,
        default=0.0,
        section="Sampling",
        importance=Importance.EXPERT,
        model_families=DDPM_FAMILIES,
        label="Guidance rescale",
        minimum=0.0,
        maximum=1.0,
        help="Rescales guided noise to fix over-exposure, mainly for v-prediction / zero-"
        "terminal-SNR models (0.7 is the paper's value). 0 turns it off.",
        width=4,
    ),
    _field(
        name="validation_seed",
        type=FieldType.INT,
        default=0,
        section="Sampling",
        importance=Importance.ADVANCED,
        label="Validation seed",
        minimum=0,
        maximum=2**32 - 1,
        help="Seed for the validation noise. The same seed at every validation makes images "
        "comparable across steps.",
        width=4,
    ),
    _field(
        name="validation_resolution",
        type=FieldType.INT,
        default=0,
        section="Sampling",
        importance=Importance.ADVANCED,
        label="Validation resolution",
        minimum=0,
        maximum=4096,
        multiple_of=8,
        help="Side of the square validation images in pixels (multiple of 8). 0 uses the "
        "training resolution.",
        width=4,
    ),
    _field(
        name="validation_scheduler",
        type=FieldType.CHOICE,
        default="default",
        section="Sampling",
        importance=Importance.ADVANCED,
        model_families=DDPM_FAMILIES,  # flow-matching models sample with their own
        label="Sampler",
        choices=(
            Choice(
                value="default", label="Model default", help="The scheduler saved with the model."
            ),
            Choice(value="ddim", label="DDIM"),
            Choice(value="euler", label="Euler"),
            Choice(value="euler_a", label="Euler ancestral"),
            Choice(value="dpmpp_2m", label="DPM++ 2M"),
        ),
        help="Sampler used to render validation images. It only affects the previews, never the "
        "trained weights.",
        width=4,
    ),
)
