"""Datasets: image folders with captions, mixed into one deterministic stream of batches.

Every random choice (order, flip, crop, caption dropout, tag shuffle and dropout, whether a
batch uses its loss masks) comes from a seed derived from (run seed, epoch, position), never
from the global RNG, so a resumed run sees exactly the batches an uninterrupted run would have
seen.

Dataset kinds: `train` images train; `regularization` images (DreamBooth prior preservation)
are mixed into the same batches, cycled so that an epoch holds as many regularization samples
as training samples (kohya's rule), and each carries `is_reg` so its loss is weighted by
prior_loss_weight (`weigh_samples`); `eval` images never train (trainer.eval_loss reads them).

Loss masks (mask_source file / alpha) are decoded per item with the same resize, crop and
flip as the image and are not part of the latent cache; `weigh_samples` brings them to the
latent size for the family's loss.

The batch sampler and the image records live in trainer.buckets (imported here, so
`trainer.data` still names them).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from trainer.buckets import BucketBatchSampler, DatasetError, ImageRecord
from tunerdeck_common.dataset_rules import (
    IMAGE_EXTENSIONS,
    caption_for,
    is_mask_file,
    make_buckets,
    mask_file_for,
    nearest_bucket,
    size_filter_reason,
)


def _label(entry: Mapping[str, Any], index: int) -> str:
    folder = entry["path"]
    return str(entry["name"] or folder or f"datasets[{index}]")


def _mask_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as img:
            return ImageOps.exif_transpose(img).size
    except Exception:
        return None


def scan_entry(
    entry: Mapping[str, Any],
    index: int,
    resolution: int,
    warn: Callable[[str], None],
) -> list[ImageRecord]:
    """Every readable image of one dataset entry that passes its size filters; unreadable
    and filtered images, missing and wrong-size masks are reported through `warn`."""
    folder = Path(entry["path"]).expanduser() if entry["path"] else None
    label = _label(entry, index)
    if folder is None or not folder.is_dir():
        raise DatasetError(f"dataset {label!r}: folder {entry['path']!r} does not exist")
    bucketing = entry["bucketing"]
    buckets = (
        make_buckets(resolution, entry["bucket_step"], entry["max_aspect_ratio"])
        if bucketing
        else [(resolution, resolution)]
    )
    masks_from_files = entry.get("mask_source", "none") == "file"
    is_reg = entry.get("kind", "train") == "regularization"
    records = []
    filtered: dict[str, int] = {}
    missing_masks = resized_masks = 0
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        if is_mask_file(path, entry):
            continue
        try:
            with Image.open(path) as img:
                img.verify()  # cheap integrity check without decoding every pixel
            with Image.open(path) as img:
                size = ImageOps.exif_transpose(img).size
        except Exception as exc:
            warn(f"skipping unreadable image {path}: {exc}")
            continue
        reason = size_filter_reason(size, entry)
        if reason is not None:
            filtered[reason] = filtered.get(reason, 0) + 1
            continue
        mask = None
        if masks_from_files:
            mask = mask_file_for(path)
            if mask is None:
                missing_masks += 1
            elif _mask_size(mask) != size:
                resized_masks += 1
        records.append(
            ImageRecord(
                path,
                caption_for(path, entry),
                size,
                nearest_bucket(size, buckets),
                index,
                mask,
                is_reg,
            )
        )
    for reason, n in filtered.items():
        warn(f"dataset {label!r}: left out {n} image(s) {reason}")
    if missing_masks:
        warn(f"dataset {label!r}: {missing_masks} image(s) have no mask file and train unmasked")
    if resized_masks:
        warn(
            f"dataset {label!r}: {resized_masks} mask(s) differ in size from their image and "
            "are resized to it"
        )
    if not records:
        why = f" (size filters left out {sum(filtered.values())})" if filtered else ""
        raise DatasetError(f"dataset {label!r}: no readable images in {folder}{why}")
    return records


@dataclass(frozen=True)
class ItemPlan:
    """The random decisions for one (record, seed) item; cache_key names its latents."""

    record: ImageRecord
    resized: tuple[int, int]  # (width, height) before the crop
    crop_left_top: tuple[int, int]  # (left, top)
    flipped: bool
    caption: str
    cache_key: str


def _shuffle_tags(caption: str, keep: int, rng: random.Random) -> str:
    tags = [t.strip() for t in caption.split(",") if t.strip()]
    head, tail = tags[:keep], tags[keep:]
    rng.shuffle(tail)
    return ", ".join(head + tail)


def _drop_tags(caption: str, keep: int, probability: float, rng: random.Random) -> str:
    """Each comma-separated tag after the first `keep` is left out with `probability`."""
    tags = [t.strip() for t in caption.split(",") if t.strip()]
    head, tail = tags[:keep], tags[keep:]
    return ", ".join(head + [t for t in tail if rng.random() >= probability])


class ImageCaptionDataset(torch.utils.data.Dataset):
    """Items are (record index, augmentation seed) pairs produced by `BucketBatchSampler`."""

    def __init__(
        self, records: list[ImageRecord], entries: Sequence[Mapping[str, Any]], resolution: int
    ) -> None:
        self.records = records
        self.resolution = resolution
        # Set by the trainer once the latent cache is full (an object with get(key)).
        self.latent_cache: Any = None
        self._sources: dict[int, str] = {}
        # Read each entry's augmentation settings once, not per item.
        self.opts = [
            {
                "flip": e["random_flip"],
                "crop": e["crop"] if not e["bucketing"] else "center",
                "dropout": e["caption_dropout_probability"],
                "shuffle": e["shuffle_caption"],
                "keep": e["keep_tokens"],
                # .get: entries made in code (the eval loss's plain one) may leave these out.
                "tag_dropout": float(e.get("caption_tag_dropout", 0.0)),
                "mask": e.get("mask_source", "none"),
            }
            for e in entries
        ]

    def __len__(self) -> int:
        return len(self.records)

    def plan(self, item: tuple[int, int]) -> ItemPlan:
        """Every random decision for one item, from the record alone (no pixels decoded), in
        the order __getitem__ has always drawn them: crop, flip, tag shuffle, (tag dropout,
        drawn only when set), caption dropout. The caption is part of the plan, so the text
        cache holds every caption variant the sampler will use."""
        idx, seed = item
        rec = self.records[idx]
        opt = self.opts[rec.entry]
        rng = random.Random(seed)
        bw, bh = rec.bucket
        w, h = rec.size  # already EXIF-transposed by scan_entry
        # Resize to cover the bucket, then crop the (small, for a matching bucket) excess.
        scale = max(bw / w, bh / h)
        rw, rh = max(bw, round(w * scale)), max(bh, round(h * scale))
        if opt["crop"] == "random":
            left, top = rng.randint(0, rw - bw), rng.randint(0, rh - bh)
        else:
            left, top = (rw - bw) // 2, (rh - bh) // 2
        flipped = bool(opt["flip"]) and rng.random() < 0.5
        caption = rec.caption
        if opt["shuffle"]:
            caption = _shuffle_tags(caption, opt["keep"], rng)
        if opt["tag_dropout"] > 0:
            caption = _drop_tags(caption, opt["keep"], opt["tag_dropout"], rng)
        if opt["dropout"] > 0 and rng.random() < opt["dropout"]:
            caption = ""
        source = self._sources.get(idx)
        if source is None:  # the file's identity, looked up once per record and process
            source = self._sources[idx] = f"{rec.path.resolve()}|{rec.path.stat().st_mtime_ns}"
        key = f"{source}|{bw}x{bh}|{left},{top}|{int(flipped)}"
        return ItemPlan(rec, (rw, rh), (left, top), flipped, caption, key)

    def pixels(self, plan: ItemPlan) -> torch.Tensor:
        """The item's image as a (3, h, w) tensor in [-1, 1]: decoded, resized, cropped, flipped."""
        rec = plan.record
        with Image.open(rec.path) as raw:
            img = ImageOps.exif_transpose(raw).convert("RGB")
        img = img.resize(plan.resized, Image.Resampling.BICUBIC)
        (left, top), (bw, bh) = plan.crop_left_top, rec.bucket
        img = img.crop((left, top, left + bw, top + bh))
        if plan.flipped:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    def mask(self, plan: ItemPlan) -> torch.Tensor | None:
        """The item's loss mask as a (1, h, w) tensor in [0, 1] (white trains), resized,
        cropped and flipped exactly as pixels() treats the image; None: no mask."""
        rec = plan.record
        source = self.opts[rec.entry]["mask"]
        if source == "file" and rec.mask is not None:
            with Image.open(rec.mask) as raw:
                img = ImageOps.exif_transpose(raw).convert("L")
            if img.size != rec.size:  # counted and reported by the scan
                img = img.resize(rec.size, Image.Resampling.BILINEAR)
        elif source == "alpha":
            with Image.open(rec.path) as raw:
                img = ImageOps.exif_transpose(raw)
                if img.mode not in ("RGBA", "LA", "PA") and "transparency" not in img.info:
                    return None  # no alpha channel: the whole image trains
                img = img.convert("RGBA").getchannel("A")
        else:
            return None
        img = img.resize(plan.resized, Image.Resampling.BILINEAR)
        (left, top), (bw, bh) = plan.crop_left_top, rec.bucket
        img = img.crop((left, top, left + bw, top + bh))
        if plan.flipped:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        return torch.from_numpy(arr)[None].contiguous()

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        plan = self.plan(item)
        rec = plan.record
        # With a latent cache the cached distribution replaces the pixels: a hit never opens
        # the image file. A miss (a torn cache file) falls back to pixels.
        latent = self.latent_cache.get(plan.cache_key) if self.latent_cache is not None else None
        left, top = plan.crop_left_top
        bw, bh = rec.bucket
        return {
            "pixel_values": None if latent is not None else self.pixels(plan),
            "latent": latent,
            "caption": plan.caption,
            "original_size": (rec.size[1], rec.size[0]),  # (h, w) as SDXL expects
            "crop_top_left": (top, left),
            "target_size": (bh, bw),
            "cache_key": plan.cache_key,
            "mask": self.mask(plan),
            "is_reg": rec.is_reg,
            "seed": item[1],
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    pixels = [i["pixel_values"] for i in items]
    masks = [i.get("mask") for i in items]
    stacked_masks = None
    if any(m is not None for m in masks):  # items without one train everywhere
        h, w = items[0]["target_size"]
        stacked_masks = torch.stack([m if m is not None else torch.ones(1, h, w) for m in masks])
    return {
        # Stacked when every item has pixels; otherwise per item, None where "latents" has it.
        "pixel_values": torch.stack(pixels) if all(p is not None for p in pixels) else pixels,
        "latents": [i["latent"] for i in items],
        "captions": [i["caption"] for i in items],
        "original_sizes": [i["original_size"] for i in items],
        "crop_top_lefts": [i["crop_top_left"] for i in items],
        "target_sizes": [i["target_size"] for i in items],
        "cache_keys": [i["cache_key"] for i in items],
        "masks": stacked_masks,  # (batch, 1, h, w) in pixels, or None
        "is_reg": [bool(i.get("is_reg", False)) for i in items],
        "seeds": [int(i.get("seed", 0)) for i in items],
    }


def weigh_samples(
    noised: Any,
    batch: Mapping[str, Any],
    prior_loss_weight: float,
    masked_loss_probability: float,
) -> None:
    """Give the batch's data-side loss weights to `noised` (a families.base.Noised) for the
    family's loss: prior_loss_weight on regularization samples (times any weights the noise
    set), and the loss masks at the latent size when this batch uses them (a seeded draw
    against masked_loss_probability, the same on a resume)."""
    target = noised.target
    is_reg = batch.get("is_reg") or []
    if any(is_reg):
        w = torch.tensor([prior_loss_weight if r else 1.0 for r in is_reg], device=target.device)
        noised.weights = w if noised.weights is None else noised.weights.view(-1) * w
    masks = batch.get("masks")
    if masks is None or masked_loss_probability <= 0:
        return
    seeds = batch.get("seeds") or [0]
    if random.Random(f"mask:{seeds[0]}").random() >= masked_loss_probability:
        return
    # Area averaging: a latent cell weighs as much as the share of its pixels that train.
    noised.mask = torch.nn.functional.interpolate(
        masks.to(target.device, torch.float32), size=tuple(target.shape[-2:]), mode="area"
    )


@dataclass
class TrainData:
    dataset: ImageCaptionDataset
    sampler: BucketBatchSampler
    records: list[ImageRecord]
    entries: list[Mapping[str, Any]]

    def image_counts(self) -> dict[str, dict[str, int]]:
        """Per dataset folder: the readable images trained on and their repeats (the figures
        a saved LoRA's metadata reports, taken from this scan rather than a second one)."""
        counts: dict[str, dict[str, int]] = {}
        for i, entry in enumerate(self.entries):
            folder = Path(str(entry["path"])).expanduser()
            used = sum(1 for r in self.records if r.entry == i)
            counts[folder.name or str(folder)] = {
                "n_repeats": int(entry["repeats"]),
                "img_count": used,
            }
        return counts


def build_train_data(
    entries: Sequence[Mapping[str, Any]],
    resolution: int,
    batch_size: int,
    seed: int,
    shuffle: bool,
    warn: Callable[[str], None],
    num_processes: int = 1,
    process_index: int = 0,
    prior_loss_weight: float = 1.0,
) -> TrainData:
    """Scan every enabled training and regularization entry (eval entries never train; with
    prior_loss_weight 0 regularization entries would add only zero-weight samples and are
    left out); raise DatasetError with one clear message if nothing is usable (or the
    samples cannot be dealt out to `num_processes`, see BucketBatchSampler)."""
    enabled = [e for e in entries if e["enabled"]]
    active = [e for e in enabled if e["kind"] == "train"]
    regs = [e for e in enabled if e["kind"] == "regularization"]
    if regs and not active:
        raise DatasetError(
            "only regularization datasets are enabled: add a training dataset (kind train) "
            "for them to regularize"
        )
    if regs and prior_loss_weight == 0:
        warn("prior_loss_weight is 0: the regularization datasets are left out")
    elif regs:
        active += regs
    if not active:
        raise DatasetError("no dataset configured: add a dataset folder (or use model_family demo)")
    records: list[ImageRecord] = []
    for i, entry in enumerate(active):
        records += scan_entry(entry, i, resolution, warn)
    repeats = [int(e["repeats"]) for e in active]
    dataset = ImageCaptionDataset(records, active, resolution)
    sampler = BucketBatchSampler(
        records, repeats, batch_size, seed, shuffle, num_processes, process_index
    )
    return TrainData(dataset, sampler, records, active)


def make_dataloader(data: TrainData, accelerator: Any, num_workers: int, seed: int) -> Any:
    """This process's training DataLoader, prepared by accelerate but not sharded again.

    The sampler already yields only this process's batches; `accelerator.prepare` would wrap
    it in accelerate's BatchSamplerShard, which deals those batches out a second time and pads
    short rounds with items of other buckets. accelerate's `prepare_data_loader` with
    num_processes=1 builds the loader one process gets from `prepare` (device placement, and
    the end-of-epoch flag that gradient accumulation syncs on) and leaves the sampler alone.
    """
    from accelerate.data_loader import prepare_data_loader

    loader = torch.utils.data.DataLoader(
        data.dataset,
        batch_sampler=data.sampler,
        collate_fn=collate,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched
    )
    return prepare_data_loader(
        loader,
        accelerator.device,
        num_processes=1,
        process_index=0,
        put_on_device=accelerator.device_placement,
        rng_types=list(accelerator.rng_types),
        dispatch_batches=False,
        non_blocking=accelerator.non_blocking,
        use_seedable_sampler=accelerator.use_seedable_sampler,
        data_seed=accelerator.dataloader_config.data_seed,
        use_stateful_dataloader=accelerator.use_stateful_dataloader,
    )
