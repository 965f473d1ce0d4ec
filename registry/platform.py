"""What this machine can run, worked out without importing torch: the one detection both the
UI (which fields and choices to offer) and the trainer (validating its config) use.

Device: "cuda" when an NVIDIA GPU is visible, "mps" on Apple silicon, else "cpu". Packages:
the optional ones some choices need (`Choice.packages`, e.g. adamw8bit -> bitsandbytes), found
by `importlib.util.find_spec` (cheap: nothing is imported).
"""

from __future__ import annotations

import importlib.util
import os
import platform as _platform
from functools import lru_cache

from registry.catalogue import ALL_FIELDS
from registry.evaluator import Device, PlatformContext

OPTIONAL_PACKAGES = (
    "bitsandbytes",
    "xformers",
    "prodigyopt",
    "lion_pytorch",
    "schedulefree",  # adamw_schedulefree
    "came_pytorch",  # came
    "wandb",
    "tensorboard",
    "torchao",  # fp8 mixed precision (either this or transformer_engine)
    "transformer_engine",
)


def has_nvidia_gpu() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False  # GPUs hidden on purpose: this process trains on the CPU
    try:
        import pynvml  # nvidia-ml-py: a thin ctypes binding, cheap to import

        pynvml.nvmlInit()
        try:
            return bool(pynvml.nvmlDeviceGetCount() > 0)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver or no binding: fall back to the device nodes
        return os.path.exists("/dev/nvidiactl") and os.path.exists("/dev/nvidia0")


def installed_packages() -> frozenset[str]:
    return frozenset(p for p in OPTIONAL_PACKAGES if importlib.util.find_spec(p) is not None)


@lru_cache(maxsize=1)
def any_platform() -> PlatformContext:
    """A machine that offers everything: for judging a config (or building a launch command)
    without regard to the machine it is checked on (a file may be for a GPU box)."""
    packages = {p for f in ALL_FIELDS for c in f.choices for p in c.packages}
    return PlatformContext(device="cuda", packages=frozenset(packages))


@lru_cache(maxsize=1)
def detect_platform() -> PlatformContext:
    device: Device
    if has_nvidia_gpu():
        device = "cuda"
    elif _platform.system() == "Darwin" and _platform.machine() == "arm64":
        device = "mps"
    else:
        device = "cpu"
    return PlatformContext(device=device, packages=installed_packages())
