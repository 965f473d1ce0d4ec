"""Drop library log lines a user cannot act on, at the logger that emits them.

Contract: `install()` adds a filter to a few named library loggers (before or after the
library is imported: loggers are per-name singletons). A record is dropped only when its
logger is listed AND its message matches one of that logger's patterns, so every other
warning of those libraries still reaches the run's log. Each pattern says why it is noise.
"""

from __future__ import annotations

import logging
import re

NOISE: dict[str, tuple[re.Pattern[str], ...]] = {
    # Optional compiled kernels built for another Python/CUDA: torchao works without them.
    "torchao": (re.compile(r"^Failed to load .*\.so\b"),),
    # Only matters for loading checkpoints quantized by torchao, which this trainer never reads.
    "diffusers.quantizers.torchao.torchao_quantizer": (
        re.compile(r"^Unable to import `torchao` Tensor objects"),
    ),
    # Image processors of pipelines we never use for training; the PIL fallback is fine.
    "transformers.utils.import_utils": (
        re.compile(r"requires torchvision \(not installed\); falling back"),
    ),
    # A cast of a model with no fp32-only modules (the list is empty): nothing to keep.
    "diffusers.models.modeling_utils": (
        re.compile(r"^There are modules in \w+ that should be kept in float32: \[\]"),
    ),
    # A deprecation inside torch/torchao's own start-up, not in this project's code.
    "torch.utils._pytree": (re.compile(r"is an Enum subclass and is now natively supported"),),
}


def is_noise(logger_name: str, message: str) -> bool:
    return any(p.search(message) for p in NOISE.get(logger_name, ()))


class _NoiseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to judge
            return True
        return not is_noise(record.name, message)


_FILTER = _NoiseFilter()


def install() -> None:
    """Idempotent: one filter per listed logger."""
    for name in NOISE:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
