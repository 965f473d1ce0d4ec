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


def caption_for(image: Path, entry: Mapping[str, Any]) -> str:
    """The caption trained for `image` under an effective dataset entry (before dropout and
    tag shuffling, which are random per step)."""
    source = entry.get("caption_source", "sidecar")
    if source == "instance_prompt":
        caption = str(entry.get("instance_prompt", ""))
    elif source == "filename":
        caption = image.stem.replace("_", " ").replace("-", " ")
    else:
        caption = read_sidecar(image, entry.get("caption_extension", ".txt")) or ""
    prefix = entry.get("caption_prefix", "")
    if prefix:
        caption = f"{prefix}, {caption}" if caption else prefix
    return caption
