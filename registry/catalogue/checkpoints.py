"""Checkpoints tab: where the run writes, checkpoints and resuming, logging and trackers."""

from __future__ import annotations

from functools import partial

from registry.catalogue._rules import only_if
from registry.field import Choice, ConfigField, FieldType, Importance

TAB = "checkpoints"
SECTIONS = ("Output", "Checkpoints", "Logging", "Trackers")

_field = partial(ConfigField, tab=TAB)

FIELDS: tuple[ConfigField, ...] = (
    _field(
        name="output_dir",
        type=FieldType.PATH,
        default="output",
        section="Output",
        importance=Importance.ESSENTIAL,
        label="Output folder",
        help="The run folder: events.jsonl, checkpoints/, validation/ images, the final weights/ "
        "and a config.toml snapshot are written here. For `python -m trainer`, relative paths "
        "are relative to the folder it starts in; use a new folder per run unless you are "
        "resuming. The web UI gives every run its own subfolder of this folder (a relative "
        "one lies inside the output root of the preferences).",
        widget="folder",
        width=8,
    ),
    _field(
        name="run_name",
        type=FieldType.STR,
        default="",
        section="Output",
        importance=Importance.COMMON,
        label="Run name",
        help="A human name shown in run history and tracker dashboards. Empty uses the output "
        "folder's name.",
        placeholder="my-style-lora-v2",
        width=4,
    ),
    _field(
        name="checkpointing_steps",
        type=FieldType.INT,
        default=100,
        section="Checkpoints",
        importance=Importance.COMMON,
        label="Checkpoint every N steps",
        minimum=0,
        maximum=100_000_000,
        help="Save the full training state (weights, optimizer, scheduler, RNG, step) every N "
        "steps so the run can resume exactly. 0 checkpoints only when the run stops or ends "
        "(or at the epochs of checkpoint_epoch_interval). Read under SimpleTuner's name "
        "checkpoint_step_interval too.",
        aliases=("checkpoint_step_interval",),
        width=4,
    ),
    _field(
        name="checkpoint_epoch_interval",
        type=FieldType.INT,
        default=0,
        section="Checkpoints",
        importance=Importance.COMMON,
        label="Checkpoint every N epochs",
        minimum=0,
        maximum=1_000_000,
        help="Also save a checkpoint at the end of every N-th epoch (a pass over every "
        "dataset). 0 turns this off; checkpointing_steps still applies.",
        width=4,
    ),
    _field(
        name="checkpoints_total_limit",
        type=FieldType.INT,
        default=3,
        section="Checkpoints",
        importance=Importance.COMMON,
        label="Checkpoints to keep",
        minimum=0,
        maximum=100_000,
        help="Keep only the newest N checkpoints and delete older ones after each save. "
        "0 keeps all of them (full fine-tune checkpoints are several GB each).",
        width=4,
    ),
    _field(
        name="resume_from_checkpoint",
        type=FieldType.STR,
        default="",
        section="Checkpoints",
        importance=Importance.COMMON,
        label="Resume from",
        help="'latest' resumes from the newest checkpoint in output_dir/checkpoints, or give "
        "the path of a checkpoint-<step> folder. Training continues at the exact step. Empty "
        "starts fresh.",
        placeholder="latest",
        width=4,
    ),
    _field(
        name="save_precision",
        type=FieldType.CHOICE,
        default="fp16",
        section="Output",
        importance=Importance.ADVANCED,
        label="Saved weight precision",
        choices=(
            Choice(value="fp32", label="fp32", help="Full precision: largest files."),
            Choice(
                value="fp16", label="fp16", help="Half precision: half the size, loads everywhere."
            ),
            Choice(
                value="bf16", label="bf16", help="bfloat16: half the size, wider range than fp16."
            ),
        ),
        help="Data type of the final safetensors weights. fp16 halves the file with no visible "
        "loss; training precision is set by mixed_precision.",
        width=4,
    ),
    _field(
        name="lora_format",
        type=FieldType.CHOICE,
        default="comfyui",
        section="Output",
        importance=Importance.COMMON,
        label="LoRA file format",
        choices=(
            Choice(
                value="comfyui",
                label="ComfyUI / A1111 (kohya keys)",
                help="lora_unet_... / lora_te_... keys with .alpha: what ComfyUI, Forge/A1111 "
                "and InvokeAI load; diffusers loads it too.",
            ),
            Choice(
                value="diffusers",
                label="diffusers (peft keys)",
                help="unet.* / text_encoder.* keys as diffusers' save_lora_weights writes them.",
            ),
        ),
        help="Key layout of the saved LoRA file. Both load with diffusers' load_lora_weights "
        "and give the same images; the file is named after the run and carries the base model, "
        "rank, steps, datasets, the run's config and modelspec metadata.",
        model_families=("demo", "sd1x", "sd2x", "sdxl"),
        dependencies=(only_if("model_type", "lora"),),
        width=4,
    ),
    _field(
        name="save_single_file",
        type=FieldType.BOOL,
        default=False,
        section="Output",
        importance=Importance.ADVANCED,
        label="Also save one .safetensors",
        help="For a full fine-tune, also write the model as one .safetensors file in the "
        "original (ComfyUI / A1111) layout, at save_precision, beside the diffusers folder.",
        model_families=("sd1x", "sd2x", "sdxl"),
        dependencies=(only_if("model_type", "full"),),
        width=4,
    ),
    _field(
        name="logging_steps",
        type=FieldType.INT,
        default=1,
        section="Logging",
        importance=Importance.ADVANCED,
        label="Report progress every N steps",
        minimum=0,
        maximum=100_000_000,
        help="Send a progress event (loss, learning rate, speed) every N steps to the UI and "
        "the tracker. 0 sends none, leaving only lifecycle events.",
        width=4,
    ),
    _field(
        name="report_to",
        type=FieldType.CHOICE,
        default="none",
        section="Trackers",
        importance=Importance.COMMON,
        label="Experiment tracker",
        choices=(
            Choice(value="none", label="None", help="Only tunerdeck's own charts."),
            Choice(
                value="tensorboard",
                label="TensorBoard",
                help="Write TensorBoard event files under output_dir/logging_dir.",
                requires="tensorboard",
            ),
            Choice(
                value="wandb",
                label="Weights & Biases",
                help="Log to Weights & Biases (needs `wandb login` or offline mode).",
                requires="wandb",
            ),
        ),
        help="Also log metrics and validation images to an experiment tracker, through "
        "accelerate's tracking. tunerdeck's own charts work either way.",
        width=4,
    ),
    _field(
        name="logging_dir",
        type=FieldType.PATH,
        default="logs",
        section="Trackers",
        importance=Importance.ADVANCED,
        label="TensorBoard folder",
        help="Folder for TensorBoard event files, relative to output_dir. Point `tensorboard "
        "--logdir` at it.",
        dependencies=(only_if("report_to", "tensorboard"),),
        width=4,
    ),
    _field(
        name="tracker_project_name",
        type=FieldType.STR,
        default="tunerdeck",
        section="Trackers",
        importance=Importance.COMMON,
        label="Tracker project",
        help="Project name the tracker files the run under (the W&B project, the TensorBoard "
        "run subfolder).",
        dependencies=(only_if("report_to", "tensorboard", "wandb"),),
        width=4,
    ),
    _field(
        name="wandb_entity",
        type=FieldType.STR,
        default="",
        section="Trackers",
        importance=Importance.ADVANCED,
        label="W&B entity",
        help="Weights & Biases user or team to log to. Empty uses your default entity.",
        dependencies=(only_if("report_to", "wandb"),),
        width=4,
    ),
    _field(
        name="wandb_mode",
        type=FieldType.CHOICE,
        default="online",
        section="Trackers",
        importance=Importance.ADVANCED,
        label="W&B mode",
        choices=(
            Choice(value="online", help="Stream to the W&B server while training."),
            Choice(value="offline", help="Write locally; upload later with `wandb sync`."),
        ),
        help="Online streams metrics as you train; offline writes them locally for a later "
        "`wandb sync` (useful without internet).",
        dependencies=(only_if("report_to", "wandb"),),
        width=4,
    ),
)
