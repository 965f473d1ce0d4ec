"""Bucket counting for the dataset scan: the buckets themselves come from the trainer's own
torch-free rules (tunerdeck_common/dataset_rules.py), so the scan shows what training will do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tunerdeck_common.dataset_rules import Bucket, make_buckets, nearest_bucket, steps_per_epoch

__all__ = ["Bucket", "make_buckets", "nearest_bucket", "steps_per_epoch"]


def buckets_for_entry(entry: Mapping[str, Any], resolution: int) -> list[Bucket]:
    """An effective dataset entry's buckets: one square when bucketing is off (crop)."""
    if entry["bucketing"]:
        return make_buckets(resolution, int(entry["bucket_step"]), float(entry["max_aspect_ratio"]))
    return [(resolution, resolution)]


def merge_counts(parts: Iterable[Mapping[Bucket, int]]) -> dict[Bucket, int]:
    """Samples of several datasets share batches when they land in the same bucket."""
    total: dict[Bucket, int] = {}
    for part in parts:
        for bucket, n in part.items():
            total[bucket] = total.get(bucket, 0) + n
    return total


def bucket_label(bucket: Bucket) -> str:
    return f"{bucket[0]}×{bucket[1]}"
