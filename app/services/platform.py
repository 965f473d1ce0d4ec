"""What this machine can run, worked out without importing torch (the UI must start fast)."""

from __future__ import annotations

import importlib.util
import platform as _platform
from functools import lru_cache

from registry.evaluator import PlatformContext

# Optional packages some choices need (e.g. adamw8bit -> bitsandbytes).
OPTIONAL_PACKAGES = (
    "bitsandbytes",
    "xformers",
    "prodigyopt",
    "lion_pytorch",
    "wandb",
    "tensorboard",
    "torchao",  # fp8 mixed precision (either this or transformer_engine)
    "transformer_engine",
)


def _has_nvidia_gpu() -> bool:
    try:
        import pynvml  # nvidia-ml-py: a thin ctypes binding, cheap to import

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount() > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no library: not a CUDA machine
        return False


@lru_cache(maxsize=1)
def detect_platform() -> PlatformContext:
    if _has_nvidia_gpu():
        device = "cuda"
    elif _platform.system() == "Darwin" and _platform.machine() == "arm64":
        device = "mps"
    else:
        device = "cpu"
    packages = frozenset(p for p in OPTIONAL_PACKAGES if importlib.util.find_spec(p) is not None)
    return PlatformContext(device=device, packages=packages)
