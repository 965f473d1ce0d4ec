"""Batches of one bucket each, dealt out to a run's processes (BucketBatchSampler), and the
image records they are made of. Randomness comes only from (seed, epoch): see the sampler's
contract. trainer.data builds the records and the dataset that decodes them."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tunerdeck_common.dataset_rules import BatchPlanError, plan_batch_sizes


class DatasetError(ValueError):
    """A dataset that cannot be trained on (missing folder, no usable images)."""


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    caption: str
    size: tuple[int, int]  # original (width, height)
    bucket: tuple[int, int]  # training (width, height)
    entry: int  # index of the dataset entry it came from
    mask: Path | None = None  # the mask file (mask_source file)
    is_reg: bool = False  # from a regularization dataset


class BucketBatchSampler:
    """Batches of one bucket each, dealt out to the processes of a run.

    Contract, for every (seed, epoch) and any number of processes P:

    - Every batch holds items of one bucket only, so it stacks into one tensor.
    - Across the P processes, every image appears exactly `repeats` times per epoch (its
      entry's repeats; regularization images as sample_counts says): nothing is dropped and
      nothing is padded in.
    - Every process yields the same number of batches, `len(self)`, none of them empty, so
      all processes run the same number of optimizer steps (DDP would hang otherwise).
    - The epoch's batches are one global, seeded sequence; process r takes batches r, r+P,
      r+2P, ... ("round" k = batches kP .. kP+P-1, one per process). Each item carries an
      augmentation seed derived from (seed, epoch, global batch index, slot), so what an item
      looks like depends on neither the process count, the data workers nor a resume.
    - With one process the sequence is the plain one: each bucket's items shuffled and cut
      into batches of `batch_size` (the last one of a bucket may be short), then the batches
      shuffled.

    With several processes the number of batches must be a multiple of P. When it is not,
    the plan (which depends only on the bucket sizes, never on the shuffle, so `len()` is known
    up front and equal on every process) changes the batch sizes, not the samples:

    - preferably it splits the largest batches in two until the count is a multiple of P;
      every batch then still holds at most `batch_size` items;
    - when there are too few samples for that (e.g. batch size 1 and an odd number of samples
      on 2 processes), it merges the two smallest batches of a bucket instead, fewer than P
      times per epoch, so a few batches hold more than `batch_size` items (never more than
      P x `batch_size`);
    - when neither works (fewer samples than P times the rounds that the buckets need, e.g.
      3 images in 3 buckets on 2 processes), it raises DatasetError saying what to change.

    Batches of different sizes in one step are fine for DDP but weigh samples slightly
    unevenly: each process averages the loss over its own batch and DDP then averages the
    gradients over processes, so in such a step an item of a smaller batch counts more.
    """

    def __init__(
        self,
        records: list[ImageRecord],
        repeats: Sequence[int],
        batch_size: int,
        seed: int,
        shuffle: bool,
        num_processes: int = 1,
        process_index: int = 0,
    ) -> None:
        if not 0 <= process_index < num_processes:
            raise ValueError(f"process_index {process_index} outside 0..{num_processes - 1}")
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.num_processes = num_processes
        self.process_index = process_index
        self.epoch = 0
        self.drop_last = False
        self._by_bucket: dict[tuple[int, int], list[int]] = {}
        for i, count in enumerate(sample_counts(records, repeats)):
            self._by_bucket.setdefault(records[i].bucket, []).extend([i] * count)
        self._by_bucket = {b: v for b, v in sorted(self._by_bucket.items()) if v}
        try:
            self._sizes = plan_batch_sizes(
                {b: len(v) for b, v in self._by_bucket.items()}, batch_size, num_processes
            )
        except BatchPlanError as exc:
            raise DatasetError(str(exc)) from None
        self._len = sum(len(s) for s in self._sizes.values()) // num_processes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Batches per epoch for this process (the same on every process)."""
        return self._len

    def global_batches(self) -> list[list[tuple[int, int]]]:
        """The epoch's batches of every process, in dealing order (batch b goes to process
        b % num_processes); items are (record index, augmentation seed)."""
        rng = random.Random(f"{self.seed}:{self.epoch}")
        batches: list[list[int]] = []
        for bucket, members in self._by_bucket.items():
            idxs = list(members)
            if self.shuffle:
                rng.shuffle(idxs)
            start = 0
            for size in self._sizes[bucket]:
                batches.append(idxs[start : start + size])
                start += size
        if self.shuffle:
            rng.shuffle(batches)
        # One augmentation seed per slot: independent of workers, processes and resume.
        return [
            [(idx, hash((self.seed, self.epoch, b, k)) & 0x7FFFFFFF) for k, idx in enumerate(batch)]
            for b, batch in enumerate(batches)
        ]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        yield from self.global_batches()[self.process_index :: self.num_processes]


def sample_counts(records: Sequence[ImageRecord], repeats: Sequence[int]) -> list[int]:
    """How many times each record is a sample per epoch: its entry's repeats, except for
    regularization records, which fill exactly as many samples as the training records make
    (kohya's rule): each with its repeats in order until that number is reached, then one
    more each, round after round, when there are fewer."""
    counts = [0 if r.is_reg else repeats[r.entry] for r in records]
    wanted = sum(counts)
    reg = [i for i, r in enumerate(records) if r.is_reg]
    first = True
    while reg and wanted > 0:
        for i in reg:
            add = min(repeats[records[i].entry] if first else 1, wanted)
            counts[i] += add
            wanted -= add
            if wanted == 0:
                break
        first = False
    return counts
