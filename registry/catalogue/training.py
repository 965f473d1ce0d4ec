"""Training tab: duration, batch, resolution, loss and noise settings, EMA, memory."""

from __future__ import annotations

from functools import partial

from registry.catalogue._rules import all_of, only_if, when
from registry.field import Choice, ConfigField, Effect, FieldType, Importance, Op

TAB = "training"
SECTIONS = (
    "Duration",
    "Batch",
    "Resolution and caching",
    "Loss and noise",
    "Timesteps",
    "EMA",
    "Memory and data order",
)

_field = partial(ConfigField, tab=TAB)
_ema = all_of(only_if("model_type", "full"), when("use_ema", Op.TRUTHY))

FIELDS: tuple[ConfigField, ...] = (
    _field(
        name="max_train_steps",
        type=FieldType.INT,
        default=500,
        section="Duration",
        importance=Importance.ESSENTIAL,
        label="Max training steps",
        minimum=0,
        help="Total optimizer steps to train (one step = train_batch_size x "
        "gradient_accumulation_steps images per process). 0 trains for num_train_epochs "
        "instead.",
        hint="LoRA on 20-50 images: 1000-3000 steps is a common start.",
        width=4,
    ),
    _field(
        name="num_train_epochs",
        type=FieldType.INT,
        default=1,
        section="Duration",
        importance=Importance.COMMON,
        label="Epochs",
        minimum=1,
        help="Number of passes over every dataset (counting repeats). Used only when "
        "max_train_steps is 0.",
        dependencies=(
            when(
                "max_train_steps",
                Op.LTE,
                0,
                reason="used only when max_train_steps is 0 (the step count decides otherwise)",
            ),
        ),
        width=4,
    ),
    _field(
        name="train_batch_size",
        type=FieldType.INT,
        default=1,
        section="Batch",
        importance=Importance.ESSENTIAL,
        label="Batch size",
        minimum=1,
        maximum=1024,
        help="Images per forward pass on each process. Larger batches give smoother gradients "
        "but need more memory; with aspect-ratio bucketing a batch only holds images of one "
        "bucket.",
        width=4,
    ),
    _field(
        name="gradient_accumulation_steps",
        type=FieldType.INT,
        default=1,
        section="Batch",
        importance=Importance.COMMON,
        label="Gradient accumulation",
        minimum=1,
        maximum=1024,
        help="Add up gradients over this many batches before each optimizer step. Simulates a "
        "larger batch (effective batch = batch size x accumulation x processes) without the "
        "memory; each step takes proportionally longer.",
        width=4,
    ),
    _field(
        name="seed",
        type=FieldType.INT,
        default=42,
        section="Batch",
        importance=Importance.COMMON,
        minimum=0,
        maximum=2**32 - 1,
        help="Random seed for weight init, noise, timesteps, shuffling and augmentation, so a "
        "run can be repeated exactly on the same hardware.",
        width=4,
    ),
    _field(
        name="resolution",
        type=FieldType.INT,
        default=512,
        section="Resolution and caching",
        importance=Importance.ESSENTIAL,
        minimum=64,
        maximum=4096,
        multiple_of=8,
        help="Training resolution in pixels (the side of a square; with bucketing, the area "
        "budget of every bucket). Use the model's native size: 512 for SD 1.x, 512 or 768 "
        "for SD 2.x, 1024 for SDXL. Must be a multiple of 8.",
        width=4,
    ),
    _field(
        name="cache_latents",
        type=FieldType.BOOL,
        default=False,
        section="Resolution and caching",
        importance=Importance.COMMON,
        label="Cache latents",
        help="Encode every image with the VAE once and keep the latents on disk (in "
        "output_dir/cache). Saves VAE time and memory every step; the cache is reused while "
        "the images and resolution/crop settings stay the same. Random crops and flips are "
        "fixed per cached image.",
        width=4,
    ),
    _field(
        name="cache_text_embeddings",
        type=FieldType.BOOL,
        default=False,
        section="Resolution and caching",
        importance=Importance.ADVANCED,
        label="Cache text embeddings",
        help="Encode every caption once and keep the text-encoder outputs, so the text "
        "encoders can leave GPU memory. Not possible while the text encoder trains; caption "
        "dropout and shuffling then work on cached variants only.",
        dependencies=(
            when(
                "train_text_encoder",
                Op.FALSY,
                effect=Effect.DISABLE,
                reason="not possible while train_text_encoder is on (its outputs change every step)",
            ),
        ),
        width=4,
    ),
    _field(
        name="noise_offset",
        type=FieldType.FLOAT,
        default=0.0,
        section="Loss and noise",
        importance=Importance.ADVANCED,
        minimum=0.0,
        maximum=1.0,
        help="Adds a small per-channel constant to the training noise so the model can learn "
        "very dark and very bright images. 0.05-0.1 is typical; 0 turns it off.",
        width=4,
    ),
    _field(
        name="input_perturbation",
        type=FieldType.FLOAT,
        default=0.0,
        section="Loss and noise",
        importance=Importance.EXPERT,
        minimum=0.0,
        maximum=1.0,
        help="Perturbs the noise added to the latents (as in diffusers' train scripts) which "
        "can speed up convergence slightly. 0.1 is the suggested value; 0 turns it off.",
        width=4,
    ),
    _field(
        name="snr_gamma",
        type=FieldType.FLOAT,
        default=0.0,
        section="Loss and noise",
        importance=Importance.ADVANCED,
        label="Min-SNR gamma",
        minimum=0.0,
        maximum=100.0,
        help="Min-SNR loss weighting: down-weights easy low-noise timesteps so training "
        "converges faster. 5.0 is the recommended value; 0 turns it off.",
        width=4,
    ),
    _field(
        name="loss_type",
        type=FieldType.CHOICE,
        default="l2",
        section="Loss and noise",
        importance=Importance.ADVANCED,
        label="Loss",
        choices=(
            Choice(
                value="l2",
                label="L2 (MSE)",
                help="Mean squared error, the standard diffusion loss.",
            ),
            Choice(
                value="huber",
                label="Huber",
                help="Quadratic near zero, linear for large errors; robust to outliers.",
            ),
            Choice(value="smooth_l1", label="Smooth L1", help="Huber scaled by 1/huber_c."),
        ),
        help="The loss between predicted and target noise. Huber-style losses are more robust "
        "to noisy or mislabeled data.",
        width=4,
    ),
    _field(
        name="huber_c",
        type=FieldType.FLOAT,
        default=0.1,
        section="Loss and noise",
        importance=Importance.EXPERT,
        label="Huber c",
        minimum=0.0,
        maximum=10.0,
        help="Threshold where the Huber loss switches from quadratic to linear. Smaller values "
        "act more like L1.",
        dependencies=(only_if("loss_type", "huber", "smooth_l1"),),
        width=4,
    ),
    _field(
        name="min_timestep",
        type=FieldType.INT,
        default=0,
        section="Timesteps",
        importance=Importance.EXPERT,
        minimum=0,
        maximum=999,
        help="Lowest diffusion timestep sampled during training (0-999). Raising it skips the "
        "fine-detail end of the schedule.",
        width=4,
    ),
    _field(
        name="max_timestep",
        type=FieldType.INT,
        default=1000,
        section="Timesteps",
        importance=Importance.EXPERT,
        minimum=1,
        maximum=1000,
        help="Timesteps are sampled from [min_timestep, max_timestep). Lowering it focuses "
        "training on detail rather than composition.",
        width=4,
    ),
    _field(
        name="use_ema",
        type=FieldType.BOOL,
        default=False,
        section="EMA",
        importance=Importance.ADVANCED,
        label="Use EMA",
        help="Keep an exponential moving average of the UNet weights and save that instead of "
        "the raw weights: smoother, often better results for full fine-tunes, at the cost of "
        "one more copy of the UNet in memory.",
        dependencies=(only_if("model_type", "full"),),
        width=4,
    ),
    _field(
        name="ema_decay",
        type=FieldType.FLOAT,
        default=0.9999,
        section="EMA",
        importance=Importance.EXPERT,
        label="EMA decay",
        minimum=0.0,
        maximum=1.0,
        help="How slowly the average follows the weights. 0.9999 averages over roughly the last "
        "10,000 steps; use 0.999 or lower for short runs.",
        dependencies=(_ema,),
        width=4,
    ),
    _field(
        name="ema_update_after_step",
        type=FieldType.INT,
        default=0,
        section="EMA",
        importance=Importance.EXPERT,
        label="EMA start step",
        minimum=0,
        help="Start averaging only after this many steps, so the first noisy updates are not "
        "part of the average.",
        dependencies=(_ema,),
        width=4,
    ),
    _field(
        name="gradient_checkpointing",
        type=FieldType.BOOL,
        default=False,
        section="Memory and data order",
        importance=Importance.COMMON,
        label="Gradient checkpointing",
        help="Recompute activations in the backward pass instead of storing them: much less "
        "memory (often what makes SDXL fit) for roughly 20-30% slower steps.",
        width=4,
    ),
    _field(
        name="dataloader_shuffle",
        type=FieldType.BOOL,
        default=True,
        section="Memory and data order",
        importance=Importance.ADVANCED,
        label="Shuffle samples",
        help="Shuffle the order of samples every epoch (seeded by seed). Turn off only to "
        "debug a dataset in a fixed order.",
        width=4,
    ),
)
