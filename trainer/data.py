"""Datasets: image folders with captions, mixed into one deterministic stream of batches.

Every random choice (order, flip, crop, caption dropout, tag shuffle) comes from a seed
derived from (run seed, epoch, position), never from the global RNG, so a resumed run sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from trainer.dataset_rules import IMAGE_EXTENSIONS, caption_for, make_buckets, nearest_bucket


class DatasetError(ValueError):
    """A dataset that cannot be trained on (missing folder, no usable images)."""


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    caption: str
    size: tuple[int, int]  # original (width, height)
    bucket: tuple[int, int]  # training (width, height)
    entry: int  # index of the dataset entry it came from


def scan_entry(
    entry: Mapping[str, Any],
    index: int,
    resolution: int,
    warn: Callable[[str], None],
) -> list[ImageRecord]:
    """Every readable image of one dataset entry; unreadable ones are reported and skipped."""
    folder = Path(entry["path"]).expanduser() if entry["path"] else None
    label = entry["name"] or (str(folder) if folder else f"datasets[{index}]")
    if folder is None or not folder.is_dir():
        raise DatasetError(f"dataset {label!r}: folder {entry['path']!r} does not exist")
    bucketing = entry["bucketing"]
    buckets = (
        make_buckets(resolution, entry["bucket_step"], entry["max_aspect_ratio"])
        if bucketing
        else [(resolution, resolution)]
    )
    records = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        try:
            with Image.open(path) as img:
                img.verify()  # cheap integrity check without decoding every pixel
            with Image.open(path) as img:
                size = ImageOps.exif_transpose(img).size
        except Exception as exc:
            warn(f"skipping unreadable image {path}: {exc}")
            continue
        records.append(
            ImageRecord(path, caption_for(path, entry), size, nearest_bucket(size, buckets), index)
        )
    if not records:
        raise DatasetError(f"dataset {label!r}: no readable images in {folder}")
    return records


def _shuffle_tags(caption: str, keep: int, rng: random.Random) -> str:
    tags = [t.strip() for t in caption.split(",") if t.strip()]
    head, tail = tags[:keep], tags[keep:]
    rng.shuffle(tail)
    return ", ".join(head + tail)


class ImageCaptionDataset(torch.utils.data.Dataset):
    """Items are (record index, augmentation seed) pairs produced by `BucketBatchSampler`."""

    def __init__(
        self, records: list[ImageRecord], entries: Sequence[Mapping[str, Any]], resolution: int
    ) -> None:
        self.records = records
        self.resolution = resolution
        # Read each entry's augmentation settings once, not per item.
        self.opts = [
            {
                "flip": e["random_flip"],
                "crop": e["crop"] if not e["bucketing"] else "center",
                "dropout": e["caption_dropout_probability"],
                "shuffle": e["shuffle_caption"],
                "keep": e["keep_tokens"],
            }
            for e in entries
        ]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        idx, seed = item
        rec = self.records[idx]
        opt = self.opts[rec.entry]
        rng = random.Random(seed)
        with Image.open(rec.path) as raw:
            img = ImageOps.exif_transpose(raw).convert("RGB")
        bw, bh = rec.bucket
        # Resize to cover the bucket, then crop the (small, for a matching bucket) excess.
        scale = max(bw / img.width, bh / img.height)
        rw, rh = max(bw, round(img.width * scale)), max(bh, round(img.height * scale))
        img = img.resize((rw, rh), Image.Resampling.BICUBIC)
        if opt["crop"] == "random":
            left, top = rng.randint(0, rw - bw), rng.randint(0, rh - bh)
        else:
            left, top = (rw - bw) // 2, (rh - bh) // 2
        img = img.crop((left, top, left + bw, top + bh))
        flipped = opt["flip"] and rng.random() < 0.5
        if flipped:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
        caption = rec.caption
        if opt["shuffle"]:
            caption = _shuffle_tags(caption, opt["keep"], rng)
        if opt["dropout"] > 0 and rng.random() < opt["dropout"]:
            caption = ""
        return {
            "pixel_values": torch.from_numpy(arr).permute(2, 0, 1).contiguous(),
            "caption": caption,
            "original_size": (rec.size[1], rec.size[0]),  # (h, w) as SDXL expects
            "crop_top_left": (top, left),
            "target_size": (bh, bw),
            "cache_key": f"{rec.path.resolve()}|{rec.path.stat().st_mtime_ns}|{bw}x{bh}|{left},{top}|{int(flipped)}",
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "pixel_values": torch.stack([i["pixel_values"] for i in items]),
        "captions": [i["caption"] for i in items],
        "original_sizes": [i["original_size"] for i in items],
        "crop_top_lefts": [i["crop_top_left"] for i in items],
        "target_sizes": [i["target_size"] for i in items],
        "cache_keys": [i["cache_key"] for i in items],
    }


class BucketBatchSampler:
    """Batches of one bucket each; order fixed by (seed, epoch); repeats expand the list."""

    def __init__(
        self,
        records: list[ImageRecord],
        repeats: Sequence[int],
        batch_size: int,
        seed: int,
        shuffle: bool,
    ) -> None:
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.drop_last = False
        self._by_bucket: dict[tuple[int, int], list[int]] = {}
        for i, rec in enumerate(records):
            self._by_bucket.setdefault(rec.bucket, []).extend([i] * repeats[rec.entry])
        self._len = sum(math.ceil(len(v) / batch_size) for v in self._by_bucket.values())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        rng = random.Random(f"{self.seed}:{self.epoch}")
        batches: list[list[int]] = []
        for bucket in sorted(self._by_bucket):
            idxs = list(self._by_bucket[bucket])
            if self.shuffle:
                rng.shuffle(idxs)
            batches += [idxs[i : i + self.batch_size] for i in range(0, len(idxs), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        for b, batch in enumerate(batches):
            # One augmentation seed per slot: independent of workers, processes and resume.
            yield [
                (idx, hash((self.seed, self.epoch, b, k)) & 0x7FFFFFFF)
                for k, idx in enumerate(batch)
            ]


@dataclass
class TrainData:
    dataset: ImageCaptionDataset
    sampler: BucketBatchSampler
    records: list[ImageRecord]


def build_train_data(
    entries: Sequence[Mapping[str, Any]],
    resolution: int,
    batch_size: int,
    seed: int,
    shuffle: bool,
    warn: Callable[[str], None],
) -> TrainData:
    """Scan every enabled entry; raise DatasetError with one clear message if nothing is usable."""
    active = [e for e in entries if e["enabled"]]
    if not active:
        raise DatasetError("no dataset configured: add a dataset folder (or use model_family demo)")
    records: list[ImageRecord] = []
    for i, entry in enumerate(active):
        records += scan_entry(entry, i, resolution, warn)
    repeats = [int(e["repeats"]) for e in active]
    dataset = ImageCaptionDataset(records, active, resolution)
    sampler = BucketBatchSampler(records, repeats, batch_size, seed, shuffle)
    return TrainData(dataset, sampler, records)
