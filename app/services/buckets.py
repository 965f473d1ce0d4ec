"""Aspect-ratio bucket maths, pure Python (no torch), so the scan and the UI can use it.

It follows the trainer's rules exactly (trainer/data.py `make_buckets`, `_nearest_bucket`
and `BucketBatchSampler`); tests/datasets/test_buckets.py checks the two agree. The trainer
cannot import app/, so the shared home for this module would be a torch-free trainer or
registry module: see the datasets part's report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Bucket = tuple[int, int]  # (width, height) in pixels


def make_buckets(resolution: int, step: int, max_ratio: float) -> list[Bucket]:
    """(w, h) pairs with sides multiple of `step`, area close to resolution², ratio <= max_ratio."""
    step = max(8, step)
    area = resolution * resolution
    buckets = {(resolution, resolution)}
    w = step
    while w <= resolution * max_ratio:
        h = int(area / w) // step * step
        if h >= step and max(w / h, h / w) <= max_ratio + 1e-6:
            buckets.add((w, h))
        w += step
    return sorted(buckets)


def nearest_bucket(size: tuple[int, int], buckets: Sequence[Bucket]) -> Bucket:
    """The bucket whose aspect ratio is closest (in log space) to the image's; larger wins ties."""
    ratio = math.log(size[0] / size[1])
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - ratio), -b[0] * b[1]))


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
