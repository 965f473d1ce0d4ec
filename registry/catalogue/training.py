"""Training tab: duration, batch, resolution, loss and noise settings, EMA, memory."""

from __future__ import annotations

from functools import partial

from registry.catalogue._rules import DDPM_FAMILIES, all_of, only_if, when
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
        maximum=100_000_000,
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
        maximum=1_000_000,
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
        help="Before step 1, encode with the VAE every image variant the run will train on "
        "and keep the latent distributions on disk (output_dir/cache/latents): each image's "
        "crop and, with random_flip, each flip that the shuffled order will use (random crops: up to "
        "one variant per image per epoch). Training then reads the cache instead of decoding "
        "and resizing images, and the VAE waits in CPU memory (validation images borrow it "
        "back). Latents are still sampled from the cached distribution every step, so a "
        "cached run trains like an uncached one. Reused while the model, images, resolution "
        "and crop settings stay the same.",
        width=4,
    ),
    _field(
        name="cache_text_embeddings",
        type=FieldType.BOOL,
        default=False,
        section="Resolution and caching",
        importance=Importance.ADVANCED,
        label="Cache text embeddings",
        help="Before step 1, encode every caption the run will use (each variant that tag "
        "shuffling and caption dropout will produce) and keep the text-encoder outputs on disk "
        "(output_dir/cache/text). Training then reads the cache and the text encoders wait in "
        "CPU memory (validation images borrow them back). Not possible while the text encoder "
        "trains.",
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
        model_families=DDPM_FAMILIES,
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
        model_families=DDPM_FAMILIES,
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
        model_families=DDPM_FAMILIES,
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
                label="Pseudo-Huber",
                help="2c(sqrt(x^2 + c^2) - c) with a timestep-scheduled c: like L2 for small "
                "errors, linear for large ones. What kohya sd-scripts and SimpleTuner call huber.",
            ),
            Choice(
                value="smooth_l1",
                label="Smooth L1",
                help="2(sqrt(x^2 + c^2) - c): the pseudo-Huber loss divided by c, so large "
                "errors count like L1 whatever c is (kohya's smooth_l1).",
            ),
        ),
        help="The loss between predicted and target noise. The Huber-style losses are more "
        "robust to noisy or mislabeled images (Khrapov et al. 2024, scheduled pseudo-Huber).",
        width=4,
    ),
    _field(
        name="huber_schedule",
        type=FieldType.CHOICE,
        default="snr",
        section="Loss and noise",
        importance=Importance.EXPERT,
        label="Huber schedule",
        choices=(
            Choice(
                value="snr",
                label="SNR",
                help="c follows the noise level: about 1 for nearly clean inputs, huber_c for "
                "very noisy ones.",
            ),
            Choice(
                value="exponential",
                label="Exponential",
                help="c falls exponentially from 1 at timestep 0 to huber_c at the last timestep.",
            ),
            Choice(value="constant", label="Constant", help="c is huber_c at every timestep."),
        ),
        help="How the Huber threshold c changes with the timestep. The scheduled ones keep the "
        "loss close to L2 at low noise, where fine detail is learned, and robust at high noise. "
        "snr is kohya's default.",
        dependencies=(only_if("loss_type", "huber", "smooth_l1"),),
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
        exclusive_minimum=True,
        maximum=10.0,
        help="The Huber threshold where the loss turns from quadratic to linear: its value at "
        "high noise for the snr and exponential schedules, everywhere for constant. Smaller "
        "values act more like L1. 0.1 is the usual value.",
        dependencies=(only_if("loss_type", "huber", "smooth_l1"),),
        width=4,
    ),
    _field(
        name="prior_loss_weight",
        type=FieldType.FLOAT,
        default=1.0,
        section="Loss and noise",
        importance=Importance.ADVANCED,
        minimum=0.0,
        maximum=100.0,
        help="Loss weight of regularization images (datasets of kind regularization; DreamBooth "
        "prior preservation) relative to training images. 1.0 is the usual value; 0 makes them "
        "count for nothing. Without a regularization dataset it has no effect.",
        width=4,
    ),
    _field(
        name="masked_loss_probability",
        type=FieldType.FLOAT,
        default=1.0,
        section="Loss and noise",
        importance=Importance.ADVANCED,
        minimum=0.0,
        maximum=1.0,
        help="Chance that a batch uses its images' loss masks (datasets with mask_source set); "
        "otherwise the whole image trains. 1.0 always masks. Without masks it has no effect.",
        widget="slider",
        width=4,
    ),
    _field(
        name="min_timestep",
        type=FieldType.INT,
        default=0,
        section="Timesteps",
        importance=Importance.EXPERT,
        model_families=DDPM_FAMILIES,
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
        model_families=DDPM_FAMILIES,
        minimum=1,
        maximum=1000,
        help="Timesteps are sampled from [min_timestep, max_timestep). Lowering it focuses "
        "training on detail rather than composition.",
        width=4,
    ),
    # Timestep bias (SimpleTuner's options of the same names). Flow models shape their
    # timestep density with weighting_scheme instead.
    _field(
        name="timestep_bias_strategy",
        type=FieldType.CHOICE,
        default="none",
        section="Timesteps",
        importance=Importance.ADVANCED,
        model_families=DDPM_FAMILIES,
        label="Timestep bias",
        choices=(
            Choice(value="none", help="Every timestep equally often."),
            Choice(
                value="earlier",
                help="Favour the first timestep_bias_portion of the schedule (low noise: fine "
                "detail).",
            ),
            Choice(
                value="later",
                help="Favour the last timestep_bias_portion of the schedule (high noise: "
                "composition and colour).",
            ),
            Choice(
                value="range",
                help="Favour timesteps from timestep_bias_begin up to (not including) "
                "timestep_bias_end.",
            ),
        ),
        help="Sample some timesteps more often than others: the favoured ones are drawn "
        "timestep_bias_multiplier times as often as the rest. Within [min_timestep, "
        "max_timestep).",
        width=4,
    ),
    _field(
        name="timestep_bias_multiplier",
        type=FieldType.FLOAT,
        default=1.0,
        section="Timesteps",
        importance=Importance.ADVANCED,
        model_families=DDPM_FAMILIES,
        label="Bias multiplier",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1000.0,
        help="How many times as often the favoured timesteps are drawn: 2.0 doubles them; "
        "below 1 makes them rarer; 1.0 has no effect.",
        dependencies=(when("timestep_bias_strategy", Op.NOT_EQUALS, "none"),),
        width=4,
    ),
    _field(
        name="timestep_bias_portion",
        type=FieldType.FLOAT,
        default=0.25,
        section="Timesteps",
        importance=Importance.ADVANCED,
        model_families=DDPM_FAMILIES,
        label="Bias portion",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
        help="The share of the schedule that is favoured: 0.25 is the first (earlier) or "
        "last (later) quarter of the timesteps.",
        dependencies=(only_if("timestep_bias_strategy", "earlier", "later"),),
        width=4,
    ),
    _field(
        name="timestep_bias_begin",
        type=FieldType.INT,
        default=0,
        section="Timesteps",
        importance=Importance.ADVANCED,
        model_families=DDPM_FAMILIES,
        label="Bias range begin",
        minimum=0,
        maximum=999,
        help="First favoured timestep of the range strategy (0-999).",
        dependencies=(only_if("timestep_bias_strategy", "range"),),
        width=4,
    ),
    _field(
        name="timestep_bias_end",
        type=FieldType.INT,
        default=1000,
        section="Timesteps",
        importance=Importance.ADVANCED,
        model_families=DDPM_FAMILIES,
        label="Bias range end",
        minimum=1,
        maximum=1000,
        help="The range strategy favours timesteps below this one (exclusive end, 1-1000).",
        dependencies=(only_if("timestep_bias_strategy", "range"),),
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
        maximum=100_000_000,
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
