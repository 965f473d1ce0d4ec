"""Bucket counting for the dataset scan: the buckets themselves come from the trainer's own
torch-free rules (trainer/dataset_rules.py), so the scan shows what training will do."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from trainer.dataset_rules import Bucket, make_buckets, nearest_bucket

__all__ = ["Bucket", "make_buckets", "nearest_bucket"]


def buckets_for_entry(entry: Mapping[str, Any], resolution: int) -> list[Bucket]:
    """An effective dataset entry's buckets: one square when bucketing is off (crop)."""
    if entry.get("bucketing", True):
        return make_buckets(
            resolution, int(entry.get("bucket_step", 64)), float(entry.get("max_aspect_ratio", 2.0))
        )
    return [(resolution, resolution)]


def batches_per_epoch(samples_per_bucket: Mapping[Bucket, int], batch_size: int) -> int:
    """A batch never mixes buckets, so each bucket's last batch may be short."""
    batch_size = max(1, batch_size)
    return sum(math.ceil(n / batch_size) for n in samples_per_bucket.values() if n > 0)


def steps_per_epoch(
    samples_per_bucket: Mapping[Bucket, int],
    batch_size: int,
    gradient_accumulation_steps: int = 1,
    num_processes: int = 1,
) -> int:
    """Optimizer steps in one epoch, counted the way the trainer's loop counts them."""
    batches = batches_per_epoch(samples_per_bucket, batch_size)
    per_process = math.ceil(batches / max(1, num_processes))
    return math.ceil(per_process / max(1, gradient_accumulation_steps))


def merge_counts(parts: Iterable[Mapping[Bucket, int]]) -> dict[Bucket, int]:
    """Samples of several datasets share batches when they land in the same bucket."""
    total: dict[Bucket, int] = {}
    for part in parts:
        for bucket, n in part.items():
            total[bucket] = total.get(bucket, 0) + n
    return total


def bucket_label(bucket: Bucket) -> str:
    return f"{bucket[0]}×{bucket[1]}"
