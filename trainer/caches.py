"""On-disk caches of VAE latent distributions and text embeddings, keyed by a hash of
everything that determines them, so they are reused exactly while the inputs are unchanged.

Contract of the trainer's use: both caches are filled before step 1 with every variant the
run will train on (each (image, crop, flip) and each caption after shuffling, tag dropout and
dropout, for every epoch still to come), found by replaying the sampler's random decisions
without decoding any image. Loss masks are not cached: each item's mask is read with its
crop and flip (trainer.data), so a latent serves masked and unmasked batches alike. Training then reads the cache only: the VAE and frozen text encoders can
wait off the accelerator. A miss during training (a cache file torn or deleted meanwhile) is
encoded again where those models are, so a run never fails for a cache.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from trainer.events import EventSink

Progress = Callable[[int, int], None]


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


class TensorCache:
    def __init__(self, folder: Path, namespace: str) -> None:
        self.folder = Path(folder)
        self.namespace = namespace  # model identity: a different model never hits
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / f"{_key(self.namespace, key)}.safetensors"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return load_file(p)
        except Exception:  # a torn file: recompute
            return None

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        p = self.path(key)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, p)


class ThrottledProgress:
    """Calls `report(done, total)` for the first item, then at most every `interval_s`
    seconds, and always for the last one: a few log lines whatever the data set's size."""

    def __init__(self, report: Progress, interval_s: float = 5.0) -> None:
        self.report = report
        self.interval_s = interval_s
        self._last: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or self._last is None or now - self._last >= self.interval_s:
            self._last = now
            self.report(done, total)


def planned_items(
    dataset: Any, batches_per_epoch: Callable[[int], Iterable[Sequence[Any]]], epochs: Iterable[int]
) -> list[Any]:
    """The distinct item plans (dataset.plan) of every batch of `epochs`, first use first:
    distinct by (latent key, caption), as an image variant may come with several captions."""
    seen: dict[tuple[str, str], Any] = {}
    for epoch in epochs:
        for batch in batches_per_epoch(epoch):
            for item in batch:
                plan = dataset.plan(item)
                seen.setdefault((plan.cache_key, plan.caption), plan)
    return list(seen.values())


def encode_latent_dist(vae: Any, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of the VAE's latent distribution, computed wherever the VAE is."""
    param = next(vae.parameters())
    with torch.no_grad():
        dist = vae.encode(pixels.to(param.device, dtype=param.dtype)).latent_dist
    return dist.mean, dist.std


def fill_latent_cache(
    cache: TensorCache,
    plans: Sequence[Any],
    pixels: Callable[[Any], torch.Tensor],
    vae: Any,
    batch_size: int,
    progress: Progress,
) -> int:
    """Encode every plan not yet cached, batched by bucket; returns how many were encoded."""
    distinct: dict[str, Any] = {}
    for p in plans:
        distinct.setdefault(p.cache_key, p)
    todo = [p for p in distinct.values() if not cache.has(p.cache_key)]
    by_bucket: dict[tuple[int, int], list[Any]] = {}
    for p in todo:
        by_bucket.setdefault(p.record.bucket, []).append(p)
    done = 0
    progress(0, len(todo))
    for group in by_bucket.values():
        for i in range(0, len(group), batch_size):
            chunk = group[i : i + batch_size]
            mean, std = encode_latent_dist(vae, torch.stack([pixels(p) for p in chunk]))
            for k, p in enumerate(chunk):
                cache.put(p.cache_key, {"mean": mean[k], "std": std[k]})
            done += len(chunk)
            progress(done, len(todo))
    return done


def fill_text_cache(
    cache: TensorCache,
    captions: Sequence[str],
    encode: Callable[[list[str]], Mapping[str, torch.Tensor]],
    batch_size: int,
    progress: Progress,
) -> int:
    """Encode every distinct caption not yet cached; returns how many were encoded.
    `encode` gives the family's embeddings by name, batch-first; row k is cached for caption k."""
    todo = [c for c in dict.fromkeys(captions) if not cache.has(c)]
    progress(0, len(todo))
    for i in range(0, len(todo), batch_size):
        chunk = todo[i : i + batch_size]
        with torch.no_grad():
            out = encode(chunk)
        for k, caption in enumerate(chunk):
            cache.put(caption, {name: t[k] for name, t in out.items()})
        progress(min(i + batch_size, len(todo)), len(todo))
    return len(todo)


def fill_caches(
    cfg: Mapping[str, Any],
    accelerator: Any,
    sink: EventSink,
    model: Any,
    data: Any,
    latent_cache: TensorCache | None,
    text_cache: TensorCache | None,
    epochs: range,
) -> None:
    """Fill the caches with every variant the remaining epochs will use (the sampler's random
    decisions replayed without decoding images; each process fills its own batches' items);
    then move the VAE and/or the frozen text encoders to the CPU (validation borrows them
    back)."""

    def epoch_batches(epoch: int) -> Any:
        data.sampler.set_epoch(epoch)
        return iter(data.sampler)

    plans = planned_items(data.dataset, epoch_batches, epochs)
    batch = max(1, cfg["train_batch_size"])
    share = " (this process's share)" if accelerator.num_processes > 1 else ""

    def encode_text(captions: list[str]) -> Any:
        return model.encode_prompts(model.text_encoders, captions)

    def progress(what: str) -> ThrottledProgress:
        def report(done: int, total: int) -> None:
            sink.log(f"caching {what} {done}/{total}{share}")
            sink.stage(f"caching {what}", done, total)

        return ThrottledProgress(report)

    if latent_cache is not None:
        log = progress("latents")
        fill_latent_cache(latent_cache, plans, data.dataset.pixels, model.vae, batch, log)
    if text_cache is not None:
        captions = [p.caption for p in plans]
        fill_text_cache(
            text_cache, captions, encode_text, max(batch, 16), progress("text embeddings")
        )
    accelerator.wait_for_everyone()
    moved = []
    if latent_cache is not None:
        data.dataset.latent_cache = latent_cache  # training reads latents, never pixels
        model.vae.to("cpu")
        moved.append(f"VAE on {next(model.vae.parameters()).device}")
    if text_cache is not None:
        for te in model.text_encoders:
            te.to("cpu")
        moved.append(f"text encoders on {next(model.text_encoders[0].parameters()).device}")
    if accelerator.device.type == "cuda":
        torch.cuda.empty_cache()
    sink.log(f"caches complete ({len(plans)} item variants); {', '.join(moved)}")


def latent_dist(
    vae: Any, vae_dtype: Any, cache: TensorCache | None, batch: Mapping[str, Any], device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch's latent distributions (mean, std): from the cache when there is one,
    else from the VAE. A miss (a cache file torn or deleted since the fill) is encoded again."""
    if cache is None:
        with torch.no_grad():
            dist = vae.encode(batch["pixel_values"].to(device, dtype=vae_dtype)).latent_dist
        return dist.mean, dist.std
    means, stds = [], []
    for key, hit, px in zip(
        batch["cache_keys"], batch["latents"], batch["pixel_values"], strict=True
    ):
        if hit is None:
            m, s = encode_latent_dist(vae, px[None])
            hit = {"mean": m[0], "std": s[0]}
            cache.put(key, hit)
        means.append(hit["mean"].to(device))
        stds.append(hit["std"].to(device))
    return torch.stack(means), torch.stack(stds)


def text_embeds(
    model: Any,
    text_encoders: Sequence[Any],
    cache: TensorCache | None,
    captions: list[str],
    device: Any,
) -> Any:
    """Frozen text encoders' embeddings of `captions`: from the cache when there is one, else
    encoded without gradients. A miss (a cache file torn or deleted) is encoded again."""
    if cache is None:
        with torch.no_grad():
            return model.encode_prompts(text_encoders, captions)
    hits = []
    for caption in captions:
        hit = cache.get(caption)
        if hit is None:
            with torch.no_grad():
                out = model.encode_prompts(text_encoders, [caption])
            hit = {k: v[0] for k, v in out.items()}
            cache.put(caption, hit)
        hits.append(hit)
    return {k: torch.stack([h[k].to(device) for h in hits]) for k in hits[0]}
