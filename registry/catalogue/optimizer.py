"""Optimizer tab: the optimizer, its own parameters, and the learning-rate schedule."""

from __future__ import annotations

from functools import partial
from typing import Any

from registry.catalogue._rules import CUDA_ONLY, only_if, when
from registry.field import Choice, ConfigField, Effect, FieldType, Importance, Op

TAB = "optimizer"
SECTIONS = (
    "Optimizer",
    "Learning rate",
    "AdamW",
    "Adafactor",
    "Prodigy",
    "Lion",
    "Schedule-free AdamW",
    "CAME",
    "SGD",
    "Schedule",
)

_field = partial(ConfigField, tab=TAB)
_adam = only_if("optimizer", "adamw", "adamw8bit")
# Schedule-free AdamW replaces the learning-rate schedule (trainer.optim.SCHEDULE_FREE).
_scheduled = when(
    "optimizer",
    Op.NOT_EQUALS,
    "adamw_schedulefree",
    reason="schedule-free AdamW keeps the learning rate constant (no schedule); its warmup is "
    "schedulefree_warmup_steps",
)
_warmup_schedulers = (
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
)


def _param(name: str, optimizer: str | tuple[str, ...], section: str, **kwargs: Any) -> ConfigField:
    """A parameter of one optimizer (or of its variants), shown only while it is selected."""
    kwargs.setdefault("importance", Importance.ADVANCED)
    kwargs.setdefault("width", 4)
    names = (optimizer,) if isinstance(optimizer, str) else optimizer
    return _field(
        name=name, section=section, dependencies=(only_if("optimizer", *names),), **kwargs
    )


FIELDS: tuple[ConfigField, ...] = (
    _field(
        name="optimizer",
        type=FieldType.CHOICE,
        default="adamw",
        section="Optimizer",
        importance=Importance.ESSENTIAL,
        choices=(
            Choice(value="adamw", label="AdamW", help="torch.optim.AdamW: the safe default."),
            Choice(
                value="adamw8bit",
                label="AdamW 8-bit",
                help="bitsandbytes AdamW8bit: optimizer state in 8 bits, about 75% less "
                "optimizer memory. NVIDIA GPUs only.",
                platforms=CUDA_ONLY,
                requires="bitsandbytes",
            ),
            Choice(
                value="adafactor",
                label="Adafactor",
                help="Factored second moments: very little optimizer memory; popular for full "
                "SDXL fine-tunes.",
            ),
            Choice(
                value="prodigy",
                label="Prodigy",
                help="Learning-rate-free Adam variant: set learning_rate to 1.0 and let it "
                "estimate the step size.",
            ),
            Choice(
                value="lion",
                label="Lion",
                help="Sign-based optimizer; use a 3-10x lower learning rate than AdamW.",
            ),
            Choice(
                value="lion8bit",
                label="Lion 8-bit",
                help="bitsandbytes Lion8bit: Lion with its momentum in 8 bits. NVIDIA GPUs only.",
                platforms=CUDA_ONLY,
                requires="bitsandbytes",
            ),
            Choice(
                value="adamw_schedulefree",
                label="AdamW schedule-free",
                help="Schedule-free AdamW (Defazio et al. 2024): no learning-rate schedule to "
                "tune, the weights it saves are an average of the training path. Often wants a "
                "1-10x higher learning rate than AdamW.",
                requires="schedulefree",
            ),
            Choice(
                value="came",
                label="CAME",
                help="Confidence-guided Adafactor (Luo et al. 2023): Adafactor's small memory "
                "with AdamW-like stability; used for PixArt.",
                requires="came_pytorch",
            ),
            Choice(
                value="sgd", label="SGD", help="Plain SGD with momentum; rarely used for diffusion."
            ),
        ),
        help="The algorithm that updates the weights. AdamW is the dependable default; AdamW "
        "8-bit saves memory on NVIDIA GPUs; Prodigy picks its own step size; Adafactor, CAME "
        "and Lion use less memory than AdamW; schedule-free AdamW needs no schedule.",
        width=4,
    ),
    _field(
        name="learning_rate",
        type=FieldType.FLOAT,
        default=1e-4,
        section="Learning rate",
        importance=Importance.ESSENTIAL,
        label="Learning rate",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=10.0,
        help="Peak learning rate for the UNet (after warmup). Typical: 1e-4 for LoRA with "
        "AdamW, 1e-6 to 5e-6 for full fine-tunes, 1.0 with Prodigy, 3-10x lower than AdamW "
        "with Lion.",
        width=4,
    ),
    _field(
        name="text_encoder_lr",
        type=FieldType.FLOAT,
        default=5e-5,
        section="Learning rate",
        importance=Importance.COMMON,
        label="Text encoder learning rate",
        minimum=0.0,
        maximum=10.0,
        help="Learning rate for the text encoder(s). Usually half the UNet rate or lower: text "
        "encoders overfit quickly.",
        dependencies=(when("train_text_encoder", Op.TRUTHY),),
        width=4,
    ),
    _field(
        name="scale_lr",
        type=FieldType.BOOL,
        default=False,
        section="Learning rate",
        importance=Importance.ADVANCED,
        label="Scale learning rate",
        help="Multiply the learning rates by gradient_accumulation_steps x train_batch_size x "
        "num_processes, so the same value works when you change the effective batch size.",
        width=4,
    ),
    _field(
        name="max_grad_norm",
        type=FieldType.FLOAT,
        default=1.0,
        section="Learning rate",
        importance=Importance.ADVANCED,
        label="Max gradient norm",
        minimum=0.0,
        maximum=10_000.0,
        help="Clip the gradient norm to this value before each step, which prevents the odd "
        "huge update from ruining a run. 0 turns clipping off.",
        width=4,
    ),
    # AdamW / AdamW 8-bit
    _field(
        name="adam_beta1",
        type=FieldType.FLOAT,
        default=0.9,
        section="AdamW",
        importance=Importance.ADVANCED,
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="Decay of the running mean of gradients (momentum). 0.9 is standard; lower values "
        "react faster to recent gradients.",
        dependencies=(_adam,),
        width=3,
    ),
    _field(
        name="adam_beta2",
        type=FieldType.FLOAT,
        default=0.999,
        section="AdamW",
        importance=Importance.ADVANCED,
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="Decay of the running mean of squared gradients. Lower (0.99) adapts faster to "
        "changing gradient scales.",
        dependencies=(_adam,),
        width=3,
    ),
    _field(
        name="adam_weight_decay",
        type=FieldType.FLOAT,
        default=1e-2,
        section="AdamW",
        importance=Importance.ADVANCED,
        minimum=0.0,
        maximum=1.0,
        help="Decoupled weight decay: pulls weights slightly toward zero every step, a mild "
        "regulariser.",
        dependencies=(_adam,),
        width=3,
    ),
    _field(
        name="adam_epsilon",
        type=FieldType.FLOAT,
        default=1e-8,
        section="AdamW",
        importance=Importance.EXPERT,
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
        help="Small constant added to the denominator for numerical stability.",
        dependencies=(_adam,),
        width=3,
    ),
    _param(
        "adam_amsgrad",
        "adamw",
        "AdamW",
        type=FieldType.BOOL,
        default=False,
        importance=Importance.EXPERT,
        label="AMSGrad",
        help="Use the AMSGrad variant (keeps the maximum of the second moment). Not available "
        "in the 8-bit optimizer.",
    ),
    # Adafactor
    _param(
        "adafactor_relative_step",
        "adafactor",
        "Adafactor",
        type=FieldType.BOOL,
        default=False,
        label="Relative step",
        help="Let Adafactor compute its own time-dependent learning rate and ignore "
        "learning_rate. Usually left off with an explicit learning rate and a constant "
        "schedule.",
    ),
    _param(
        "adafactor_scale_parameter",
        "adafactor",
        "Adafactor",
        type=FieldType.BOOL,
        default=False,
        label="Scale parameter",
        help="Scale the learning rate by the root-mean-square of each parameter.",
    ),
    _field(
        name="adafactor_warmup_init",
        type=FieldType.BOOL,
        default=False,
        section="Adafactor",
        importance=Importance.ADVANCED,
        label="Warmup init",
        help="Start the relative step size near zero and warm it up. Only meaningful with "
        "relative_step.",
        dependencies=(
            only_if("optimizer", "adafactor"),
            when("adafactor_relative_step", Op.TRUTHY, effect=Effect.DISABLE),
        ),
        width=4,
    ),
    _param(
        "adafactor_decay_rate",
        "adafactor",
        "Adafactor",
        type=FieldType.FLOAT,
        default=-0.8,
        importance=Importance.EXPERT,
        label="Decay rate",
        minimum=-1.0,
        maximum=0.0,
        help="Exponent of the second-moment decay schedule (beta2_t = 1 - t^decay_rate).",
    ),
    _param(
        "adafactor_clip_threshold",
        "adafactor",
        "Adafactor",
        type=FieldType.FLOAT,
        default=1.0,
        importance=Importance.EXPERT,
        label="Clip threshold",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1000.0,
        help="Threshold of the root-mean-square of the final update (update clipping).",
    ),
    _param(
        "adafactor_weight_decay",
        "adafactor",
        "Adafactor",
        type=FieldType.FLOAT,
        default=0.0,
        label="Weight decay",
        minimum=0.0,
        maximum=1.0,
        help="Weight decay applied by Adafactor each step, a mild regulariser. 0 turns it off."
        " Kept small (0.01 or less) for fine-tunes.",
    ),
    # Prodigy
    _param(
        "prodigy_d0",
        "prodigy",
        "Prodigy",
        type=FieldType.FLOAT,
        default=1e-6,
        label="Initial D (d0)",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
        help="Initial estimate of the step size D. Raise it if the learning rate stays tiny "
        "for too long.",
    ),
    _param(
        "prodigy_d_coef",
        "prodigy",
        "Prodigy",
        type=FieldType.FLOAT,
        default=1.0,
        label="D coefficient",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1000.0,
        help="Multiplies the estimated step size: below 1 for gentler training (e.g. 0.5), "
        "above 1 for more aggressive.",
    ),
    _param(
        "prodigy_beta1",
        "prodigy",
        "Prodigy",
        type=FieldType.FLOAT,
        default=0.9,
        label="Beta 1",
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="Decay of the running mean of gradients (like Adam's beta1). 0.9 is standard."
        " Raise towards 0.99 for smoother, slower adaptation.",
    ),
    _param(
        "prodigy_beta2",
        "prodigy",
        "Prodigy",
        type=FieldType.FLOAT,
        default=0.99,
        label="Beta 2",
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="Decay of the running mean of squared gradients (like Adam's beta2). Prodigy's "
        "authors recommend 0.99 for diffusion.",
    ),
    _param(
        "prodigy_beta3",
        "prodigy",
        "Prodigy",
        type=FieldType.FLOAT,
        default=0.0,
        importance=Importance.EXPERT,
        label="Beta 3",
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="Decay of the step-size estimate's running averages. 0 means sqrt(beta2).",
    ),
    _param(
        "prodigy_weight_decay",
        "prodigy",
        "Prodigy",
        type=FieldType.FLOAT,
        default=0.0,
        label="Weight decay",
        minimum=0.0,
        maximum=1.0,
        help="Weight decay (decoupled, AdamW-style, when prodigy_decouple is on).",
    ),
    _param(
        "prodigy_use_bias_correction",
        "prodigy",
        "Prodigy",
        type=FieldType.BOOL,
        default=False,
        label="Bias correction",
        help="Adam-style bias correction. Often recommended for diffusion fine-tunes.",
    ),
    _param(
        "prodigy_safeguard_warmup",
        "prodigy",
        "Prodigy",
        type=FieldType.BOOL,
        default=False,
        label="Safeguard warmup",
        help="Keep the learning-rate warmup from inflating the step-size estimate. Turn on "
        "when using a scheduler with warmup.",
    ),
    _param(
        "prodigy_decouple",
        "prodigy",
        "Prodigy",
        type=FieldType.BOOL,
        default=True,
        importance=Importance.EXPERT,
        label="Decoupled weight decay",
        help="Apply weight decay AdamW-style (decoupled) rather than Adam-style.",
    ),
    # Lion
    _param(
        "lion_beta1",
        ("lion", "lion8bit"),
        "Lion",
        type=FieldType.FLOAT,
        default=0.9,
        label="Beta 1",
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="How much of the current gradient goes into the sign of the update; the rest "
        "comes from momentum. 0.9 is standard (0.95 for more stability).",
    ),
    _param(
        "lion_beta2",
        ("lion", "lion8bit"),
        "Lion",
        type=FieldType.FLOAT,
        default=0.99,
        label="Beta 2",
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="Decay of the momentum carried between steps. 0.99 is standard; 0.98 helps "
        "when training is unstable.",
    ),
    _param(
        "lion_weight_decay",
        ("lion", "lion8bit"),
        "Lion",
        type=FieldType.FLOAT,
        default=0.0,
        label="Weight decay",
        minimum=0.0,
        maximum=10.0,
        help="Decoupled weight decay. Lion needs 3-10x more weight decay than AdamW for the "
        "same effect, since its learning rate is smaller.",
    ),
    # Schedule-free AdamW
    _param(
        "schedulefree_beta1",
        "adamw_schedulefree",
        "Schedule-free AdamW",
        type=FieldType.FLOAT,
        default=0.9,
        label="Beta 1",
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="Interpolation between the training point and the running average (plays "
        "momentum's part). 0.9 is standard; 0.95-0.98 for long runs.",
    ),
    _param(
        "schedulefree_beta2",
        "adamw_schedulefree",
        "Schedule-free AdamW",
        type=FieldType.FLOAT,
        default=0.999,
        label="Beta 2",
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="Decay of the running mean of squared gradients, as in AdamW.",
    ),
    _param(
        "schedulefree_weight_decay",
        "adamw_schedulefree",
        "Schedule-free AdamW",
        type=FieldType.FLOAT,
        default=0.0,
        label="Weight decay",
        minimum=0.0,
        maximum=1.0,
        help="Decoupled weight decay applied at the training point each step. 0 turns it off.",
    ),
    _param(
        "schedulefree_warmup_steps",
        "adamw_schedulefree",
        "Schedule-free AdamW",
        type=FieldType.INT,
        default=0,
        label="Warmup steps",
        minimum=0,
        maximum=100_000_000,
        help="Steps over which the optimizer raises its learning rate linearly from 0. "
        "Schedule-free AdamW does its own warmup: lr_scheduler and lr_warmup_steps do not "
        "apply to it.",
    ),
    _param(
        "schedulefree_epsilon",
        "adamw_schedulefree",
        "Schedule-free AdamW",
        type=FieldType.FLOAT,
        default=1e-8,
        importance=Importance.EXPERT,
        label="Epsilon",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
        help="Small constant added to the denominator for numerical stability.",
    ),
    # CAME
    _param(
        "came_beta1",
        "came",
        "CAME",
        type=FieldType.FLOAT,
        default=0.9,
        label="Beta 1",
        minimum=0.0,
        maximum=1.0,
        help="Decay of the running mean of updates (momentum). 0.9 is standard.",
    ),
    _param(
        "came_beta2",
        "came",
        "CAME",
        type=FieldType.FLOAT,
        default=0.999,
        label="Beta 2",
        minimum=0.0,
        maximum=1.0,
        help="Decay of the factored second moment of gradients (Adafactor's).",
    ),
    _param(
        "came_beta3",
        "came",
        "CAME",
        type=FieldType.FLOAT,
        default=0.9999,
        label="Beta 3",
        minimum=0.0,
        maximum=1.0,
        help="Decay of the factored confidence (how far each update strays from the momentum), "
        "which scales the step down where the update is unreliable.",
    ),
    _param(
        "came_weight_decay",
        "came",
        "CAME",
        type=FieldType.FLOAT,
        default=0.0,
        label="Weight decay",
        minimum=0.0,
        maximum=1.0,
        help="Decoupled weight decay. 0 turns it off; PixArt used 0.01 or less.",
    ),
    _param(
        "came_epsilon1",
        "came",
        "CAME",
        type=FieldType.FLOAT,
        default=1e-30,
        importance=Importance.EXPERT,
        label="Epsilon 1",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
        help="Added to the squared gradient before its factored second moment is taken.",
    ),
    _param(
        "came_epsilon2",
        "came",
        "CAME",
        type=FieldType.FLOAT,
        default=1e-16,
        importance=Importance.EXPERT,
        label="Epsilon 2",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
        help="Added to the squared update residual before the confidence is taken.",
    ),
    # SGD
    _param(
        "sgd_momentum",
        "sgd",
        "SGD",
        type=FieldType.FLOAT,
        default=0.9,
        label="Momentum",
        minimum=0.0,
        maximum=1.0,
        exclusive_maximum=True,
        help="Momentum factor: how much of the previous update carries into the next. 0 is "
        "plain SGD; 0.9 is standard.",
    ),
    _field(
        name="sgd_nesterov",
        type=FieldType.BOOL,
        default=False,
        section="SGD",
        importance=Importance.ADVANCED,
        label="Nesterov",
        help="Use Nesterov momentum, which looks one step ahead and often converges a little "
        "faster. Needs a momentum above 0.",
        dependencies=(
            only_if("optimizer", "sgd"),
            when(
                "sgd_momentum",
                Op.GT,
                0,
                effect=Effect.DISABLE,
                reason="Nesterov momentum needs sgd_momentum above 0",
            ),
        ),
        width=4,
    ),
    _param(
        "sgd_weight_decay",
        "sgd",
        "SGD",
        type=FieldType.FLOAT,
        default=0.0,
        label="Weight decay",
        minimum=0.0,
        maximum=1.0,
        help="L2 weight decay added to the gradient each step, pulling weights toward zero. "
        "0 turns it off.",
    ),
    # Schedule
    _field(
        name="lr_scheduler",
        type=FieldType.CHOICE,
        default="constant",
        section="Schedule",
        importance=Importance.COMMON,
        label="Learning-rate schedule",
        choices=(
            Choice(value="constant", help="The same rate for the whole run."),
            Choice(
                value="constant_with_warmup",
                label="constant with warmup",
                help="Ramp up over the warmup steps, then constant.",
            ),
            Choice(value="linear", help="Warm up, then decrease linearly to 0."),
            Choice(value="cosine", help="Warm up, then follow a half cosine down to 0."),
            Choice(
                value="cosine_with_restarts",
                label="cosine with restarts",
                help="Cosine decay restarted lr_num_cycles times.",
            ),
            Choice(value="polynomial", help="Warm up, then decay as a polynomial to lr_end."),
        ),
        help="How the learning rate changes over the run (diffusers' get_scheduler). Constant "
        "is simple and fine for most LoRAs; cosine often gives slightly cleaner full "
        "fine-tunes.",
        dependencies=(_scheduled,),
        width=4,
    ),
    _field(
        name="lr_warmup_steps",
        type=FieldType.INT,
        default=0,
        section="Schedule",
        importance=Importance.COMMON,
        label="Warmup steps",
        minimum=0,
        maximum=100_000_000,
        help="Steps over which the learning rate rises linearly from 0 to its peak. A few "
        "hundred steps stabilise the start of full fine-tunes.",
        dependencies=(_scheduled, only_if("lr_scheduler", *_warmup_schedulers)),
        width=4,
    ),
    _field(
        name="lr_num_cycles",
        type=FieldType.INT,
        default=1,
        section="Schedule",
        importance=Importance.ADVANCED,
        label="Restart cycles",
        minimum=1,
        maximum=100_000,
        help="Number of cosine cycles: the learning rate decays to 0 and jumps back to its "
        "peak this many times over the run (hard restarts).",
        dependencies=(_scheduled, only_if("lr_scheduler", "cosine_with_restarts")),
        width=4,
    ),
    _field(
        name="lr_power",
        type=FieldType.FLOAT,
        default=1.0,
        section="Schedule",
        importance=Importance.ADVANCED,
        label="Polynomial power",
        minimum=0.0,
        maximum=100.0,
        exclusive_minimum=True,
        help="Exponent of the polynomial decay from the peak to lr_end. 1.0 is a straight "
        "line; above 1 drops quickly at first, below 1 stays high longer.",
        dependencies=(_scheduled, only_if("lr_scheduler", "polynomial")),
        width=4,
    ),
    _field(
        name="lr_end",
        type=FieldType.FLOAT,
        default=1e-7,
        section="Schedule",
        importance=Importance.ADVANCED,
        label="Final learning rate",
        minimum=0.0,
        maximum=10.0,
        help="Learning rate reached at the end of the polynomial decay (must be below "
        "learning_rate).",
        dependencies=(_scheduled, only_if("lr_scheduler", "polynomial")),
        width=4,
    ),
)
