"""Model tab, "Flow matching" section: the fields of the flow-matching families (Flux.1, SD3),
shown only for them (model_families)."""

from __future__ import annotations

from functools import partial

from registry.catalogue._rules import FLOW_FAMILIES, only_if
from registry.field import Choice, ConfigField, FieldType, Importance

TAB = "model"
SECTION = "Flow matching"

_field = partial(ConfigField, tab=TAB, section=SECTION)

FIELDS: tuple[ConfigField, ...] = (
    _field(
        name="weighting_scheme",
        type=FieldType.CHOICE,
        default="logit_normal",
        importance=Importance.ADVANCED,
        label="Timestep weighting",
        choices=(
            Choice(
                value="logit_normal",
                label="Logit-normal",
                help="Sample noise levels from a logit-normal density (logit_mean, logit_std): "
                "mostly mid-range noise, the SD3 paper's choice.",
            ),
            Choice(
                value="mode",
                label="Mode",
                help="Sample with a density peaked by mode_scale (the SD3 paper's 'mode').",
            ),
            Choice(
                value="sigma_sqrt",
                label="Sigma^-2 weights",
                help="Uniform noise levels, each sample's loss weighted by sigma^-2.",
            ),
            Choice(
                value="cosmap",
                label="Cosmap",
                help="Uniform noise levels, loss weighted by the cosine-map density.",
            ),
            Choice(value="none", label="None (uniform)", help="Uniform noise levels, no weights."),
        ),
        help="How the noise level (sigma) of each training sample is drawn and how its loss is "
        "weighted, as diffusers' SD3/Flux training scripts do (weighting_scheme there).",
        model_families=FLOW_FAMILIES,
        width=4,
    ),
    _field(
        name="logit_mean",
        type=FieldType.FLOAT,
        default=0.0,
        importance=Importance.EXPERT,
        label="Logit mean",
        minimum=-10.0,
        maximum=10.0,
        help="Mean of the logit-normal density: above 0 trains more on noisy samples "
        "(composition), below 0 on nearly clean ones (detail).",
        model_families=FLOW_FAMILIES,
        dependencies=(only_if("weighting_scheme", "logit_normal"),),
        width=4,
    ),
    _field(
        name="logit_std",
        type=FieldType.FLOAT,
        default=1.0,
        importance=Importance.EXPERT,
        label="Logit std",
        minimum=0.0,
        maximum=10.0,
        exclusive_minimum=True,
        help="Spread of the logit-normal density; larger covers the extremes more often.",
        model_families=FLOW_FAMILIES,
        dependencies=(only_if("weighting_scheme", "logit_normal"),),
        width=4,
    ),
    _field(
        name="mode_scale",
        type=FieldType.FLOAT,
        default=1.29,
        importance=Importance.EXPERT,
        label="Mode scale",
        minimum=-1.0,
        maximum=2.0,
        help="Shape of the 'mode' density (1.29 is the SD3 paper's value; 0 is uniform).",
        model_families=FLOW_FAMILIES,
        dependencies=(only_if("weighting_scheme", "mode"),),
        width=4,
    ),
    _field(
        name="flow_shift",
        type=FieldType.FLOAT,
        default=0.0,
        importance=Importance.ADVANCED,
        label="Flow shift",
        minimum=0.0,
        maximum=100.0,
        help="Shifts the sampled noise levels toward noisier samples: sigma' = s*sigma / "
        "(1 + (s-1)*sigma). 0 follows the model's own scheduler: SD3's fixed shift (3), or for "
        "Flux dev the resolution-dependent shift its pipeline uses at the batch's size "
        "(schnell: none). A value above 0 is a fixed shift for every resolution.",
        hint="0 = the model's own; 3 is common for Flux at 1024 px.",
        model_families=FLOW_FAMILIES,
        width=4,
    ),
    _field(
        name="flux_guidance_value",
        type=FieldType.FLOAT,
        default=1.0,
        importance=Importance.ADVANCED,
        label="Flux guidance",
        minimum=0.0,
        maximum=30.0,
        help="The guidance value fed to Flux dev's guidance embedding while training (dev is "
        "guidance-distilled). 1 is the usual choice for LoRAs; diffusers' script uses 3.5. "
        "Schnell has no guidance embedding and ignores it.",
        model_families=("flux",),
        width=4,
    ),
    _field(
        name="t5_max_length",
        type=FieldType.INT,
        default=0,
        importance=Importance.ADVANCED,
        label="T5 tokens",
        minimum=0,
        maximum=512,
        help="How many T5 tokens each caption is padded or cut to, while training and for "
        "validation images. 0: the model's usual length (Flux dev 512, schnell 256, SD3 256). "
        "Shorter is faster and lighter; captions longer than this are cut.",
        model_families=FLOW_FAMILIES,
        width=4,
    ),
    _field(
        name="sd3_drop_t5",
        type=FieldType.BOOL,
        default=False,
        importance=Importance.ADVANCED,
        label="Train without T5",
        help="Do not load SD3's T5 text encoder (about 9 GB in fp16): its part of the prompt "
        "is zeros, as the SD3 pipeline does without text_encoder_3. Saves much memory at some "
        "cost in prompt following; the LoRA then also works best without T5. A full fine-tune "
        "still saves the base T5.",
        model_families=("sd3",),
        width=4,
    ),
)
