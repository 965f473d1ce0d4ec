"""The eval loss: the training loss on images that never train, at fixed noise.

Contract:

- Held-out images: every image of an enabled dataset whose `kind` is eval, plus `eval_split`
  of every other dataset (a fraction 0 < x < 1 of its images, or a whole count of them),
  chosen by the run's seed. `split_eval` removes them from the training data (the sampler is
  rebuilt without them), so no training batch ever holds one.
- The number: the mean, over held-out images and EVAL_LEVELS, of the family's own loss
  (`Family.loss`) at fixed noise levels (the fraction of the schedule that training's
  timestep sampling draws, mapped to timesteps / sigmas the same way) and fixed noise (seeded
  from the image's file name and the level), on the VAE mean of the image (no latent sampling,
  no augmentation). The same weights give the same number every time, so eval losses compare
  across steps and across runs on the same held-out images.
- It runs on the main process only, without gradients, with the trained modules in eval mode
  (dropout off) and put back in the mode they were in. It is reported as an `eval` event
  (`step`, `loss`, `images`) and, with a tracker, logged as `eval_loss`.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trainer.data import (
    BucketBatchSampler,
    DatasetError,
    ImageCaptionDataset,
    ImageRecord,
    TrainData,
    collate,
    scan_entry,
)
from trainer.families.base import FixedNoise

# Where on the noise schedule the eval loss is measured: spread over the whole range (the
# same for every run, whatever its min/max timestep), so it shows both coarse and fine detail.
EVAL_LEVELS = (0.125, 0.375, 0.625, 0.875)

# Items of the eval set are never augmented: centre crop, no flip, the caption as written.
_PLAIN = {
    "random_flip": False,
    "crop": "center",
    "bucketing": True,
    "caption_dropout_probability": 0.0,
    "shuffle_caption": False,
    "keep_tokens": 0,
}


def held_out_count(split: float, images: int) -> int:
    """How many of `images` eval_split holds out: a fraction (at least one image), or a count."""
    if split <= 0:
        return 0
    if split < 1:
        return max(1, round(split * images))
    return int(split)


def _label(entry: Mapping[str, Any], index: int) -> str:
    return str(entry["name"] or entry["path"] or f"datasets[{index}]")


def split_eval(
    entries: Sequence[Mapping[str, Any]],
    data: TrainData,
    seed: int,
    warn: Callable[[str], None],
) -> tuple[TrainData, list[ImageRecord]]:
    """(the training data without the held-out images, the held-out images).

    `entries` are the config's dataset entries (enabled eval-kind entries not in `data` are
    scanned here); `data` is what build_train_data made of the others."""
    kept: list[ImageRecord] = []
    held: list[ImageRecord] = []
    by_entry: dict[int, list[ImageRecord]] = {}
    for rec in data.records:
        by_entry.setdefault(rec.entry, []).append(rec)
    for i, entry in enumerate(data.entries):
        records = by_entry.get(i, [])
        if entry["kind"] == "eval":
            held += records
            continue
        count = held_out_count(float(entry["eval_split"]), len(records))
        if count and count >= len(records):
            raise DatasetError(
                f"dataset {_label(entry, i)!r}: eval_split holds out {count} of its "
                f"{len(records)} images, leaving none to train on: lower eval_split"
            )
        chosen = set(random.Random(f"{seed}:eval:{i}").sample(range(len(records)), count))
        for k, rec in enumerate(records):
            (held if k in chosen else kept).append(rec)
    # Eval datasets that build_train_data left out (they never train): scanned here.
    known = {id(e) for e in data.entries}
    resolution = data.dataset.resolution
    for i, entry in enumerate(entries):
        if entry["enabled"] and entry["kind"] == "eval" and id(entry) not in known:
            held += scan_entry(entry, -1 - i, resolution, warn)
    if not held:
        return data, []
    if not kept:
        raise DatasetError("every image is held out for the eval loss: keep some to train on")
    s = data.sampler
    repeats = [int(e["repeats"]) for e in data.entries]
    sampler = BucketBatchSampler(
        kept, repeats, s.batch_size, s.seed, s.shuffle, s.num_processes, s.process_index
    )
    dataset = ImageCaptionDataset(kept, data.entries, resolution)
    dataset.latent_cache = data.dataset.latent_cache
    return TrainData(dataset, sampler, kept, data.entries), held


@dataclass
class _Batch:
    names: list[str]  # file names: they seed each image's noise
    meta: dict[str, Any]  # collate()'s keys: captions, sizes (SDXL conditioning)
    latents: torch.Tensor  # scaled VAE means, on the CPU
    embeds: dict[str, torch.Tensor] | None  # None: encoded at each eval (text encoders train)


class EvalLoss:
    """The held-out images, encoded once, and the eval loss of the current weights."""

    def __init__(
        self, model: Any, batches: list[_Batch], every: int, weight_dtype: torch.dtype
    ) -> None:
        self.model = model
        self.batches = batches
        self.every = every
        self.weight_dtype = weight_dtype
        self.images = sum(len(b.names) for b in batches)
        self.history: list[tuple[int, float]] = []

    @classmethod
    def prepare(
        cls,
        model: Any,
        held: Sequence[ImageRecord],
        batch_size: int,
        every: int,
        device: torch.device,
        weight_dtype: torch.dtype,
    ) -> EvalLoss:
        """Encode the held-out images (VAE means) and, while the text encoders are frozen, their
        captions: before the caches may move the VAE and text encoders off the device."""
        records = [dataclasses.replace(r, entry=0) for r in held]
        dataset = ImageCaptionDataset(records, [_PLAIN], records[0].bucket[0] if records else 0)
        by_bucket: dict[tuple[int, int], list[int]] = {}
        for idx, rec in enumerate(records):
            by_bucket.setdefault(rec.bucket, []).append(idx)
        frozen_text = not model.trainable_text_encoders()
        vae = model.vae
        batches = []
        for _, idxs in sorted(by_bucket.items()):
            for start in range(0, len(idxs), max(1, batch_size)):
                chunk = idxs[start : start + max(1, batch_size)]
                meta = collate([dataset[(idx, 0)] for idx in chunk])
                with torch.no_grad():
                    param = next(vae.parameters())
                    pixels = meta["pixel_values"].to(param.device, dtype=param.dtype)
                    mean = vae.encode(pixels).latent_dist.mean
                    latents = model.scale_latents(mean).to(weight_dtype).cpu()
                    embeds = None
                    if frozen_text:
                        out = model.encode_prompts(model.text_encoders, meta["captions"])
                        embeds = {k: v.cpu() for k, v in out.items()}
                meta["pixel_values"] = None
                names = [records[i].path.name for i in chunk]
                batches.append(_Batch(names, meta, latents, embeds))
        return cls(model, batches, every, weight_dtype)

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def compute(self, denoiser: Any, text_encoders: Sequence[Any], accelerator: Any) -> float:
        """The eval loss of these weights (`denoiser`, `text_encoders`: the trained modules,
        unwrapped or not)."""
        model = self.model
        trained_te = [text_encoders[i] for i in model.trainable_text_encoders()]
        modules = [denoiser, *trained_te]
        modes = [m.training for m in modules]
        device = accelerator.device
        total, count = 0.0, 0
        try:
            for m in modules:
                m.eval()
            with torch.no_grad(), accelerator.autocast():
                for batch in self.batches:
                    latents = batch.latents.to(device)
                    if batch.embeds is not None:
                        embeds = {k: v.to(device) for k, v in batch.embeds.items()}
                    else:
                        embeds = model.encode_prompts(text_encoders, batch.meta["captions"])
                    n = latents.shape[0]
                    for k, level in enumerate(EVAL_LEVELS):
                        noise = torch.stack(
                            [_noise(name, k, latents.shape[1:]) for name in batch.names]
                        ).to(device, latents.dtype)
                        levels = torch.full((n,), level, device=device)
                        noised = model.add_noise(latents, batch.meta, FixedNoise(noise, levels))
                        pred = model.predict(denoiser, noised, embeds, batch.meta)
                        total += float(model.loss(pred, noised)) * n
                        count += n
        finally:
            for m, mode in zip(modules, modes, strict=True):
                m.train(mode)
        return total / max(1, count)

    def report(
        self,
        step: int,
        denoiser: Any,
        text_encoders: Sequence[Any],
        accelerator: Any,
        sink: Any,
        log_with: str | None,
    ) -> float:
        """Compute the eval loss and report it (event `eval`, tracker `eval_loss`)."""
        u = accelerator.unwrap_model(denoiser)  # one process evaluates: no DDP collectives
        tes = [accelerator.unwrap_model(t) for t in text_encoders]
        value = self.compute(u, tes, accelerator)
        self.history.append((step, value))
        sink.emit("eval", {"step": step, "loss": value, "images": self.images})
        if log_with:
            accelerator.log({"eval_loss": value}, step=step)
        return value


def _noise(name: str, level: int, shape: torch.Size) -> torch.Tensor:
    """The fixed noise of one image at one level: seeded by its file name, so it is the same
    whichever images share its batch, in every eval of every run."""
    gen = torch.Generator().manual_seed(zlib.crc32(f"{name}:{level}".encode()))
    return torch.randn(tuple(shape), generator=gen)


def make_evaluator(
    cfg: Mapping[str, Any],
    model: Any,
    held: Sequence[ImageRecord],
    accelerator: Any,
    weight_dtype: torch.dtype,
    warn: Callable[[str], None],
) -> EvalLoss | None:
    """The run's EvalLoss (main process, eval_steps > 0, images held out), else None; says
    when only one of the two is set."""
    every = cfg["eval_steps"]
    if every > 0 and not held:
        warn(
            f"eval_steps is {every} but no image is held out: set eval_split on a dataset or "
            "add a dataset used for evaluation (kind = eval); no eval loss is computed"
        )
    elif held and every <= 0:
        warn(f"{len(held)} image(s) are held out of training but eval_steps is 0: no eval loss")
    if every <= 0 or not held or not accelerator.is_main_process:
        return None
    return EvalLoss.prepare(
        model, held, cfg["train_batch_size"], every, accelerator.device, weight_dtype
    )
