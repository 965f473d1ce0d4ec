"""Dataset rules shared by the trainer and the UI's scan and browser: which files are images,
how an image gets its caption, and which aspect-ratio bucket it trains in.

Pure Python (no torch) so the UI process can import it and show exactly what the trainer
will do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

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


def read_sidecar(image: Path, extension: str) -> str | None:
    """The sidecar caption's text (stripped), or None when there is no sidecar file."""
    if not extension.startswith("."):
        extension = "." + extension
    try:
        return image.with_suffix(extension).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


# Values of the older caption_source key, as caption_strategy values.
LEGACY_CAPTION_SOURCES = {
    "sidecar": "textfile",
    "filename": "filename",
    "instance_prompt": "instance_prompt",
}


def caption_strategy(entry: Mapping[str, Any]) -> str:
    """The entry's caption_strategy; an entry written with the older caption_source key
    is read as the strategy it meant."""
    if "caption_strategy" in entry:
        return str(entry["caption_strategy"])
    legacy = entry.get("caption_source")
    return LEGACY_CAPTION_SOURCES.get(str(legacy), "textfile") if legacy else "textfile"


def filename_caption(image: Path) -> str:
    return image.stem.replace("_", " ").replace("-", " ")


def caption_for(image: Path, entry: Mapping[str, Any]) -> str:
    """The caption trained for `image` under an effective dataset entry (before dropout and
    tag shuffling, which are random per step)."""
    strategy = caption_strategy(entry)
    if strategy == "instance_prompt":
        caption = str(entry.get("instance_prompt", ""))
    elif strategy == "filename":
        caption = filename_caption(image)
    else:
        caption = read_sidecar(image, entry.get("caption_extension", ".txt")) or ""
        if not caption and strategy == "textfile_or_filename":
            caption = filename_caption(image)
    if strategy != "instance_prompt" and entry.get("prepend_instance_prompt", False):
        caption = _joined(str(entry.get("instance_prompt", "")), caption)
    return _joined(str(entry.get("caption_prefix", "")), caption)


def _joined(prefix: str, caption: str) -> str:
    if not prefix:
        return caption
    return f"{prefix}, {caption}" if caption else prefix


# ---- size filters --------------------------------------------------------------------------


def size_filter_reason(size: tuple[int, int], entry: Mapping[str, Any]) -> str | None:
    """Why an image of `size` (width, height) is left out by the entry's minimum_image_size /
    maximum_image_size (0: no limit), measured as resolution_type says (pixel: the shorter
    side; area: megapixels); None when it is kept."""
    low = float(entry.get("minimum_image_size", 0) or 0)
    high = float(entry.get("maximum_image_size", 0) or 0)
    if low <= 0 and high <= 0:
        return None
    if entry.get("resolution_type", "pixel") == "area":
        value, unit = size[0] * size[1] / 1e6, " MP"
    else:
        value, unit = float(min(size)), " px (shorter side)"
    if low > 0 and value < low:
        return f"smaller than minimum_image_size {low:g}{unit}"
    if high > 0 and value > high:
        return f"larger than maximum_image_size {high:g}{unit}"
    return None


# ---- loss masks ----------------------------------------------------------------------------

MASK_SUFFIX = "_mask"
MASK_FOLDER = "masks"


def is_mask_file(path: Path, entry: Mapping[str, Any]) -> bool:
    """With mask_source file, `cat_mask.png` beside `cat.png` is cat's mask, not an image."""
    return entry.get("mask_source", "none") == "file" and path.stem.endswith(MASK_SUFFIX)


def mask_file_for(image: Path) -> Path | None:
    """The mask file of `image`: same stem with the _mask suffix beside it (any image
    extension), or the same file name in a masks/ subfolder; None when there is none."""
    for ext in (image.suffix, *sorted(IMAGE_EXTENSIONS)):
        candidate = image.with_name(f"{image.stem}{MASK_SUFFIX}{ext}")
        if candidate.is_file():
            return candidate
    candidate = image.parent / MASK_FOLDER / image.name
    return candidate if candidate.is_file() else None


class BatchPlanError(ValueError):
    """The samples cannot be dealt out to the processes (the message says what to change)."""


def plan_batch_sizes(
    counts: Mapping[tuple[int, int], int], batch_size: int, num_processes: int
) -> dict[tuple[int, int], list[int]]:
    """Batch sizes per bucket (in bucket order) whose total count is a multiple of
    num_processes, each batch non-empty; see trainer.data.BucketBatchSampler for the rules."""
    sizes = {
        b: [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
        for b, n in counts.items()
    }
    p = num_processes
    total_samples = sum(counts.values())
    count = sum(len(s) for s in sizes.values())
    target = math.ceil(count / p) * p
    if target > total_samples:  # too few samples to split into that many batches
        target = count // p * p
        needed = math.ceil(len(sizes) / p) * p
        if target < max(needed, p):
            raise BatchPlanError(
                f"{total_samples} samples per epoch (images x repeats) in {len(sizes)} "
                f"aspect-ratio bucket(s) cannot be shared by {p} processes so that each gets a "
                f"batch of one bucket at every step without repeating or dropping an image: "
                f"raise repeats to reach at least {max(needed, p)} samples, use fewer "
                "processes, or turn bucketing off"
            )
    while count < target:  # split the largest batch (the first one on ties)
        bucket, i = max(
            ((b, i) for b in sizes for i in range(len(sizes[b]))),
            key=lambda bi: sizes[bi[0]][bi[1]],
        )
        s = sizes[bucket][i]
        sizes[bucket][i : i + 1] = [s - s // 2, s // 2]
        count += 1
    while count > target:  # merge the two smallest batches of a bucket, smallest sum first
        bucket = min(
            (b for b in sizes if len(sizes[b]) > 1),
            key=lambda b: sum(sorted(sizes[b])[:2]),
        )
        small = sorted(sizes[bucket])[:2]
        for s in small:
            sizes[bucket].remove(s)
        sizes[bucket].append(sum(small))
        count -= 1
    return sizes


def optimizer_steps(batches_per_process: int, gradient_accumulation_steps: int) -> int:
    """Optimizer steps for that many batches on each process (a last partial accumulation
    still steps)."""
    return math.ceil(batches_per_process / max(1, gradient_accumulation_steps))


def steps_per_epoch(
    samples_per_bucket: Mapping[Bucket, int],
    batch_size: int,
    gradient_accumulation_steps: int = 1,
    num_processes: int = 1,
) -> int:
    """Optimizer steps in one epoch, by the trainer's own batch plan; 0 when the samples
    cannot be shared by the processes (the trainer refuses such a run before step 1)."""
    counts = {b: n for b, n in samples_per_bucket.items() if n > 0}
    if not counts:
        return 0
    try:
        plan = plan_batch_sizes(counts, max(1, batch_size), max(1, num_processes))
    except BatchPlanError:
        return 0
    batches = sum(len(sizes) for sizes in plan.values()) // max(1, num_processes)
    return optimizer_steps(batches, gradient_accumulation_steps)
