"""Hardware tab: precision, attention, and how accelerate launches the processes.

Fields marked `accelerate_override` are also `accelerate launch` options; `extra["accelerate"]`
names that option and how it is written ("value": `--opt VALUE`, "switch": a bare `--opt`).
"""

from __future__ import annotations

from functools import partial

from registry.catalogue._rules import CUDA_ONLY, any_of, when
from registry.field import Choice, ConfigField, Effect, FieldType, Importance, Op

TAB = "hardware"
SECTIONS = ("Precision", "Attention", "Processes", "Multi-machine", "Compilation", "Data loading")

_field = partial(ConfigField, tab=TAB)
_multi_machine = when("num_machines", Op.GT, 1, reason="shown only when num_machines is above 1")
_dynamo_on = when(
    "dynamo_backend",
    Op.NOT_EQUALS,
    "no",
    effect=Effect.DISABLE,
    reason="enabled once a dynamo_backend is chosen",
)


def _launch(flag: str, form: str = "value") -> dict[str, str]:
    return {"accelerate": flag, "accelerate_form": form}


FIELDS: tuple[ConfigField, ...] = (
    _field(
        name="mixed_precision",
        type=FieldType.CHOICE,
        default="no",
        section="Precision",
        importance=Importance.ESSENTIAL,
        label="Mixed precision",
        choices=(
            Choice(
                value="no",
                label="No (fp32)",
                help="Full precision everywhere: slowest, most memory, works on every device.",
            ),
            Choice(
                value="fp16",
                label="fp16",
                help="Half precision with loss scaling. NVIDIA GPUs; SDXL's VAE needs the fp16-fix VAE.",
                platforms=CUDA_ONLY,
            ),
            Choice(
                value="bf16",
                label="bf16",
                help="bfloat16: no loss scaling needed. Ampere (RTX 30xx) or newer, Apple silicon, recent CPUs.",
            ),
            Choice(
                value="fp8",
                label="fp8",
                help="8-bit floats via accelerate (Hopper / Ada GPUs with Transformer Engine or torchao). Experimental.",
                platforms=CUDA_ONLY,
                requires=("torchao", "transformer_engine"),
            ),
        ),
        help="Compute the forward and backward passes in lower precision while keeping the "
        "trained weights in fp32: about half the activation memory and much faster on GPUs "
        "with tensor cores. bf16 is the safe choice on modern GPUs.",
        accelerate_override=True,
        extra=_launch("--mixed_precision"),
        width=4,
    ),
    _field(
        name="allow_tf32",
        type=FieldType.BOOL,
        default=True,
        section="Precision",
        importance=Importance.ADVANCED,
        label="Allow TF32",
        help="Let Ampere and newer NVIDIA GPUs use TF32 tensor cores for fp32 matrix maths: "
        "much faster, with precision that does not matter for training.",
        platforms=CUDA_ONLY,
        width=4,
    ),
    _field(
        name="attention_backend",
        type=FieldType.CHOICE,
        default="sdpa",
        section="Attention",
        importance=Importance.ADVANCED,
        label="Attention",
        choices=(
            Choice(
                value="sdpa",
                label="PyTorch SDPA",
                help="torch's scaled_dot_product_attention (flash / memory-efficient kernels where available).",
            ),
            Choice(
                value="xformers",
                label="xFormers",
                help="xFormers memory-efficient attention. NVIDIA GPUs with the xformers package.",
                platforms=CUDA_ONLY,
                requires="xformers",
            ),
            Choice(
                value="eager",
                label="Eager (classic)",
                help="The plain attention implementation: slowest and most memory; for debugging.",
            ),
        ),
        help="Attention implementation in the UNet. SDPA is fast and memory-efficient on every "
        "device with recent PyTorch; xFormers rarely helps any more.",
        width=4,
    ),
    _field(
        name="use_cpu",
        type=FieldType.BOOL,
        default=False,
        section="Processes",
        importance=Importance.ADVANCED,
        label="Force CPU",
        help="Train on the CPU even if a GPU is present (accelerate --cpu). Very slow except "
        "for the demo model.",
        accelerate_override=True,
        extra=_launch("--cpu", "switch"),
        width=4,
    ),
    _field(
        name="num_processes",
        type=FieldType.INT,
        default=1,
        section="Processes",
        importance=Importance.COMMON,
        label="Processes (GPUs)",
        minimum=1,
        maximum=1024,
        help="Total training processes across all machines, usually one per GPU. Above 1, "
        "tunerdeck launches through `accelerate launch` (data-parallel training).",
        accelerate_override=True,
        extra=_launch("--num_processes"),
        width=4,
    ),
    _field(
        name="gpu_ids",
        type=FieldType.STR,
        default="all",
        section="Processes",
        importance=Importance.ADVANCED,
        label="GPU ids",
        pattern=r"all|\d+(,\d+)*",
        help="Which GPUs of this machine to use: 'all' or a comma-separated list of ids such "
        "as '0,1'.",
        accelerate_override=True,
        extra={
            **_launch("--gpu_ids"),
            "pattern_help": "'all' or GPU ids separated by commas, like 0,1",
        },
        width=4,
    ),
    _field(
        name="num_machines",
        type=FieldType.INT,
        default=1,
        section="Multi-machine",
        importance=Importance.ADVANCED,
        label="Machines",
        minimum=1,
        maximum=1024,
        help="Number of machines taking part. Above 1, start the same command on each machine "
        "with its own machine_rank.",
        accelerate_override=True,
        extra=_launch("--num_machines"),
        width=4,
    ),
    _field(
        name="machine_rank",
        type=FieldType.INT,
        default=0,
        section="Multi-machine",
        importance=Importance.ADVANCED,
        label="Machine rank",
        minimum=0,
        maximum=1023,
        help="Index of this machine, from 0 (the main machine) to num_machines - 1.",
        dependencies=(_multi_machine,),
        accelerate_override=True,
        extra=_launch("--machine_rank"),
        width=4,
    ),
    _field(
        name="main_process_ip",
        type=FieldType.STR,
        default="",
        section="Multi-machine",
        importance=Importance.ADVANCED,
        label="Main machine address",
        help="IP address or host name of the machine with rank 0, reachable from every machine.",
        placeholder="10.0.0.1",
        dependencies=(_multi_machine,),
        accelerate_override=True,
        extra=_launch("--main_process_ip"),
        width=4,
    ),
    _field(
        name="main_process_port",
        type=FieldType.INT,
        default=29500,
        section="Multi-machine",
        importance=Importance.ADVANCED,
        label="Main process port",
        minimum=1,
        maximum=65535,
        help="TCP port the processes use to find each other. Change it if 29500 is taken, e.g. "
        "by a second run on the same machine.",
        dependencies=(
            any_of(
                when("num_machines", Op.GT, 1),
                when("num_processes", Op.GT, 1),
                reason="shown only with more than one process or machine",
            ),
        ),
        accelerate_override=True,
        extra=_launch("--main_process_port"),
        width=4,
    ),
    _field(
        name="rdzv_backend",
        type=FieldType.CHOICE,
        default="static",
        section="Multi-machine",
        importance=Importance.EXPERT,
        label="Rendezvous",
        choices=(
            Choice(value="static", help="Fixed ranks and a fixed main address (the usual choice)."),
            Choice(value="c10d", help="torch's elastic c10d rendezvous."),
        ),
        help="How processes on several machines meet (torchrun's rendezvous backend).",
        dependencies=(_multi_machine,),
        accelerate_override=True,
        extra=_launch("--rdzv_backend"),
        width=4,
    ),
    _field(
        name="dynamo_backend",
        type=FieldType.CHOICE,
        default="no",
        section="Compilation",
        importance=Importance.EXPERT,
        label="torch.compile backend",
        choices=(
            Choice(value="no", label="Off", help="No compilation."),
            Choice(
                value="inductor", help="TorchInductor: the default torch.compile backend; fastest."
            ),
            Choice(value="eager", help="Dynamo tracing without compilation (debugging)."),
            Choice(value="aot_eager", help="AOT autograd without compilation (debugging)."),
            Choice(value="cudagraphs", help="CUDA graphs (NVIDIA GPUs)."),
        ),
        help="Compile the UNet with torch.compile (TorchDynamo) through accelerate. Can speed up "
        "long runs by 10-30% after a slow first step; some setups fail to compile.",
        accelerate_override=True,
        extra=_launch("--dynamo_backend"),
        width=4,
    ),
    _field(
        name="dynamo_mode",
        type=FieldType.CHOICE,
        default="default",
        section="Compilation",
        importance=Importance.EXPERT,
        label="Compile mode",
        choices=(
            Choice(value="default", help="Balanced compile time and speed."),
            Choice(
                value="reduce-overhead",
                help="Uses CUDA graphs to cut per-step overhead; more memory.",
            ),
            Choice(
                value="max-autotune", help="Benchmarks kernels: slowest to compile, fastest to run."
            ),
        ),
        help="The torch.compile mode: default balances compile time and speed; reduce-overhead "
        "uses CUDA graphs; max-autotune benchmarks kernels (slow first steps, fastest after).",
        dependencies=(_dynamo_on,),
        accelerate_override=True,
        extra=_launch("--dynamo_mode"),
        width=4,
    ),
    _field(
        name="dynamo_use_fullgraph",
        type=FieldType.BOOL,
        default=False,
        section="Compilation",
        importance=Importance.EXPERT,
        label="Full graph",
        help="Require the whole model to compile as one graph (fail instead of falling back on "
        "graph breaks).",
        dependencies=(_dynamo_on,),
        accelerate_override=True,
        extra=_launch("--dynamo_use_fullgraph", "switch"),
        width=4,
    ),
    _field(
        name="dynamo_use_dynamic",
        type=FieldType.BOOL,
        default=False,
        section="Compilation",
        importance=Importance.EXPERT,
        label="Dynamic shapes",
        help="Compile for dynamic shapes, avoiding recompilation for every bucket size.",
        dependencies=(_dynamo_on,),
        accelerate_override=True,
        extra=_launch("--dynamo_use_dynamic", "switch"),
        width=4,
    ),
    _field(
        name="dataloader_num_workers",
        type=FieldType.INT,
        default=0,
        section="Data loading",
        importance=Importance.ADVANCED,
        label="Data loader workers",
        minimum=0,
        maximum=64,
        help="Background processes that load and augment images. 0 loads in the training "
        "process (simplest); 2-8 helps when the GPU waits on image decoding. Not needed with "
        "cache_latents.",
        width=4,
    ),
    _field(
        name="num_cpu_threads_per_process",
        type=FieldType.INT,
        default=0,
        section="Data loading",
        importance=Importance.EXPERT,
        label="CPU threads per process",
        minimum=0,
        maximum=1024,
        help="Number of CPU threads torch uses in each process (OMP_NUM_THREADS), for "
        "CPU-side work such as data loading. 0 leaves torch's default.",
        accelerate_override=True,
        extra=_launch("--num_cpu_threads_per_process"),
        width=4,
    ),
)
