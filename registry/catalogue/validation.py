"""Validation tab: sample images rendered during training to watch progress."""

from __future__ import annotations

from typing import Any

from registry.catalogue._rules import DDPM_FAMILIES, any_of, when
from registry.field import Choice, ConfigField, Effect, FieldType, Importance, Op

TAB = "validation"
SECTIONS = ("Prompts", "When", "Sampling")

_validation_on = any_of(
    when("validation_steps", Op.GT, 0),
    when("validation_epoch_interval", Op.GT, 0),
    effect=Effect.DISABLE,
    reason="validation is off (validation_steps is 0)",
)
_SCHEDULE = ("validation_steps", "validation_epoch_interval")


def _field(**kwargs: Any) -> ConfigField:
    """Every validation setting except the two intervals greys out while both are 0."""
    if kwargs["name"] not in _SCHEDULE:
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
        name="user_prompt_library",
        type=FieldType.PATH,
        default="",
        section="Prompts",
        importance=Importance.ADVANCED,
        label="Prompt library",
        help="A TOML or JSON file of named prompts, each rendered at every validation after the "
        "validation prompts, with its own seed and negative prompt. Each key is a short name; "
        'its value the prompt, or a table: `[beach]` `prompt = "sks on a beach"` `seed = 7` '
        '`negative_prompt = "blurry"` (JSON: {"beach": {"prompt": ...}}; SimpleTuner\'s '
        '{"name": "prompt"} files work as they are). Without a seed an entry uses the '
        "validation seed. A relative path is read from the folder of the config file that "
        "names it. Empty: no library.",
        placeholder="prompts.toml",
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
        "0 turns validation off (faster, but you see nothing until you test the weights). "
        "Read under SimpleTuner's name validation_step_interval too.",
        aliases=("validation_step_interval",),
        width=4,
    ),
    _field(
        name="validation_epoch_interval",
        type=FieldType.INT,
        default=0,
        section="When",
        importance=Importance.COMMON,
        label="Validate every N epochs",
        minimum=0,
        maximum=1_000_000,
        help="Also render the validation prompts at the end of every N-th epoch (a pass over "
        "every dataset). 0 turns this off; validation_steps still applies.",
        width=4,
    ),
    _field(
        name="validation_on_startup",
        aliases=("validation_at_start", "validation_on_start"),
        type=FieldType.BOOL,
        default=False,
        section="When",
        importance=Importance.COMMON,
        label="Validate before training",
        help="Also render the prompts before the first step (step 0), as a 'before' picture to "
        "compare against. Read under its older names validation_at_start and "
        "validation_on_start too.",
        width=4,
    ),
    ConfigField(  # not greyed out with validation_steps: the eval loss renders no image
        tab=TAB,
        name="eval_steps",
        type=FieldType.INT,
        default=0,
        section="When",
        importance=Importance.COMMON,
        label="Eval loss every N steps",
        minimum=0,
        maximum=100_000_000,
        help="Measure the loss on held-out images (datasets used for evaluation, or "
        "eval_split) every N optimizer steps and before the first, at fixed noise so the "
        "numbers compare across steps and runs. Rising while the training loss falls means "
        "overfitting. 0 turns it off.",
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
        help="Seed for the validation noise of every prompt (a prompt library entry may set its "
        "own). The same seed at every validation makes images comparable across steps; the "
        "k-th image of a prompt uses seed + k.",
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
