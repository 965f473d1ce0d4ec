"""Aspect-ratio buckets with one or several processes: the sampler's contract (single-bucket
batches, every sample exactly `repeats` times per epoch across processes, the same number of
non-empty batches on every process, deterministic per (seed, epoch)), then the real loader and
the real trainer under `accelerate launch` with two processes."""

from __future__ import annotations

import itertools
import json
import math
import random
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.trainer.conftest import PYTHON, REPO, losses, read_events, states, trainer_env
from trainer.data import BucketBatchSampler, DatasetError, ImageRecord

BUCKETS = [(48, 80), (64, 64), (80, 48), (96, 32), (32, 96)]


def _records(counts: list[int], entries: int = 1) -> list[ImageRecord]:
    """counts[b] images in BUCKETS[b]; images alternate between `entries` dataset entries."""
    records = []
    for b, n in enumerate(counts):
        for _ in range(n):
            i = len(records)
            records.append(ImageRecord(Path(f"img{i}.png"), "", (1, 1), BUCKETS[b], i % entries))
    return records


def _deal(records, repeats, batch_size, processes, seed=0, epoch=0, shuffle=True):
    """Every process's batches for one epoch, from one sampler per process."""
    out = []
    for rank in range(processes):
        s = BucketBatchSampler(records, repeats, batch_size, seed, shuffle, processes, rank)
        s.set_epoch(epoch)
        out.append((len(s), list(s)))
    return out


def _check_contract(records, repeats, batch_size, processes, seed, epoch, shuffle) -> None:
    dealt = _deal(records, repeats, batch_size, processes, seed, epoch, shuffle)
    lengths = {n for n, _ in dealt}
    assert len(lengths) == 1, "every process must report the same number of batches"
    for n, batches in dealt:
        assert len(batches) == n
        assert all(batches), "a process got an empty batch"
        for batch in batches:
            assert len({records[i].bucket for i, _ in batch}) == 1, "a batch mixes buckets"
    seen = Counter(i for _, batches in dealt for batch in batches for i, _ in batch)
    assert seen == Counter({i: repeats[r.entry] for i, r in enumerate(records)})
    # Batches stay within batch_size unless the samples are too few to split into enough
    # batches; then only merges of a bucket's two smallest batches go over it.
    sizes = [len(b) for _, batches in dealt for b in batches]
    plain = sum(math.ceil(c / batch_size) for c in _bucket_counts(records, repeats))
    if math.ceil(plain / processes) * processes <= sum(seen.values()):
        assert max(sizes) <= batch_size
    else:
        # Fewer than `processes` merges, so no batch grows past processes x batch_size.
        assert len(sizes) > plain - processes and max(sizes) <= processes * batch_size
    # Deterministic: fresh samplers for the same (seed, epoch) deal the same batches.
    assert _deal(records, repeats, batch_size, processes, seed, epoch, shuffle) == dealt


def _bucket_counts(records, repeats) -> list[int]:
    counts: Counter = Counter()
    for r in records:
        counts[r.bucket] += repeats[r.entry]
    return list(counts.values())


@settings(max_examples=300, deadline=None)
@given(
    counts=st.lists(st.integers(0, 9), min_size=1, max_size=len(BUCKETS)).filter(any),
    repeats=st.lists(st.integers(1, 3), min_size=2, max_size=2),
    batch_size=st.integers(1, 5),
    processes=st.integers(1, 4),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 5),
    shuffle=st.booleans(),
)
def test_every_sample_once_per_repeat_in_single_bucket_batches_on_every_process(
    counts, repeats, batch_size, processes, seed, epoch, shuffle
) -> None:
    records = _records(counts, entries=2)
    buckets = sum(1 for c in counts if c)
    samples = sum(repeats[r.entry] for r in records)
    if samples < math.ceil(buckets / processes) * processes:
        with pytest.raises(DatasetError, match="processes"):
            BucketBatchSampler(records, repeats, batch_size, seed, shuffle, processes, 0)
        return
    _check_contract(records, repeats, batch_size, processes, seed, epoch, shuffle)


@pytest.mark.parametrize("processes", [1, 2, 3, 4])
def test_every_small_case_meets_the_contract_or_is_refused(processes: int) -> None:
    """All bucket sizes 0..3 over three buckets, batch sizes 1..3, two entries' repeats."""
    for counts in itertools.product(range(4), repeat=3):
        if not any(counts):
            continue  # no images: refused earlier, by scan_entry
        for batch_size, repeats in itertools.product((1, 2, 3), ([1, 1], [1, 2])):
            records = _records(list(counts), entries=2)
            samples = sum(repeats[r.entry] for r in records)
            if samples < math.ceil(sum(1 for c in counts if c) / processes) * processes:
                with pytest.raises(DatasetError):
                    BucketBatchSampler(records, repeats, batch_size, 1, True, processes, 0)
            else:
                _check_contract(records, repeats, batch_size, processes, 1, 0, True)


def test_the_reported_case_seven_images_three_buckets_batch_two_two_processes() -> None:
    records = _records([3, 2, 2])
    for epoch in range(4):
        _check_contract(records, [1], 2, 2, seed=42, epoch=epoch, shuffle=True)
    (n0, b0), (n1, b1) = _deal(records, [1], 2, 2, seed=42)
    assert n0 == n1 == 2  # [2, 1] + [2] + [2]: 4 batches, 2 steps per process
    assert sorted(len(b) for b in b0 + b1) == [1, 2, 2, 2]


def test_batch_size_one_with_an_odd_count_merges_one_pair_instead_of_dropping() -> None:
    records = _records([7])
    (_, b0), (_, b1) = _deal(records, [1], 1, 2)
    sizes = sorted(len(b) for b in b0 + b1)
    assert sizes == [1, 1, 1, 1, 1, 2] and len(b0) == len(b1) == 3


def test_too_few_samples_for_the_buckets_and_processes_is_refused_with_a_remedy() -> None:
    with pytest.raises(DatasetError, match=r"3 samples .* 3 aspect-ratio bucket.* 2 processes"):
        BucketBatchSampler(_records([1, 1, 1]), [1], 2, 0, True, 2, 0)
    # Two repeats make 6 samples: enough.
    _check_contract(_records([1, 1, 1]), [2], 2, 2, seed=0, epoch=0, shuffle=True)


def test_one_process_keeps_the_plain_order() -> None:
    """One process: each bucket shuffled and cut into batch_size batches, then the batches
    shuffled; the seeds that a run before several-process support drew stay the same."""
    records = _records([5, 3, 4, 1], entries=2)
    repeats, bs, seed = [2, 1], 3, 7
    for epoch in range(3):
        rng = random.Random(f"{seed}:{epoch}")
        by_bucket: dict = {}
        for i, r in enumerate(records):
            by_bucket.setdefault(r.bucket, []).extend([i] * repeats[r.entry])
        batches = []
        for bucket in sorted(by_bucket):
            idxs = list(by_bucket[bucket])
            rng.shuffle(idxs)
            batches += [idxs[i : i + bs] for i in range(0, len(idxs), bs)]
        rng.shuffle(batches)
        expected = [
            [(idx, hash((seed, epoch, b, k)) & 0x7FFFFFFF) for k, idx in enumerate(batch)]
            for b, batch in enumerate(batches)
        ]
        [(n, got)] = _deal(records, repeats, bs, 1, seed, epoch)
        assert got == expected and n == len(expected)


def test_epochs_reshuffle_and_processes_split_the_global_sequence() -> None:
    records = _records([6, 5, 4])
    one = BucketBatchSampler(records, [1], 2, 3, True, 1, 0)
    orders = []
    for epoch in range(3):
        one.set_epoch(epoch)
        orders.append(list(one))
        two = [BucketBatchSampler(records, [1], 2, 3, True, 2, r) for r in range(2)]
        for s in two:
            s.set_epoch(epoch)
        # 8 batches: a multiple of 2, so the two processes share the one-process sequence.
        assert list(two[0]) + list(two[1]) == orders[-1][0::2] + orders[-1][1::2]
    assert orders[0] != orders[1] != orders[2]


# ---- two real processes --------------------------------------------------------------------

# 64 px with 16 px steps: buckets 48x80, 64x64 and 80x48 (checked in the test).
RESOLUTION, BUCKET_STEP = 64, 16
SIZES = [(64, 64), (70, 70), (60, 60), (96, 60), (100, 62), (60, 96), (62, 100)]


def _aspect_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "aspect"
    folder.mkdir()
    for i, (w, h) in enumerate(SIZES):
        Image.new("RGB", (w, h), (30 * i, 200 - 25 * i, 90)).save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text(f"block {i}")
    from tunerdeck_common.dataset_rules import make_buckets, nearest_bucket

    buckets = make_buckets(RESOLUTION, BUCKET_STEP, 2.0)
    assert len({nearest_bucket(s, buckets) for s in SIZES}) >= 3
    return folder


def _launch(args: list[str]) -> list[str]:
    # As in test_trainer_process.py: torchrun via --multi_gpu; CPU + gloo without a GPU.
    return [
        PYTHON,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        *args,
    ]


LOADER_SCRIPT = """
import json, sys
import torch
from accelerate import Accelerator
from trainer.data import build_train_data, make_dataloader
from registry.defaults import default_dataset

folder, out, resolution, step = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
acc = Accelerator(cpu=not torch.cuda.is_available())
entry = default_dataset() | {"path": folder, "bucket_step": step, "repeats": 2}
data = build_train_data([entry], resolution, 2, 5, True, print, acc.num_processes,
                        acc.process_index)
loader = make_dataloader(data, acc, 0, 5)
seen = []
for epoch in range(3):
    # Epoch 1 resumes after one batch, as the trainer's skip_first_batches does.
    run = acc.skip_first_batches(loader, 1) if epoch == 1 else loader
    run.set_epoch(epoch)
    data.sampler.set_epoch(epoch)
    seen.append([[k.split("|")[0] for k in b["cache_keys"]]
                 + [list(b["pixel_values"].shape)] for b in run])
with open(f"{out}/rank{acc.process_index}.json", "w") as f:
    json.dump({"len": len(data.sampler), "epochs": seen}, f)
"""


@pytest.mark.slow
def test_two_processes_share_each_epoch_through_the_real_loader(tmp_path: Path) -> None:
    folder = _aspect_folder(tmp_path)
    script = tmp_path / "loader.py"
    script.write_text(LOADER_SCRIPT)
    res = subprocess.run(
        _launch([str(script), str(folder), str(tmp_path), str(RESOLUTION), str(BUCKET_STEP)]),
        cwd=REPO,
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["len"] == ranks[1]["len"]
    images = sorted(str((folder / f"img{i}.png").resolve()) for i in range(len(SIZES)))
    for epoch in (0, 2):
        used = Counter()
        for rank in ranks:
            batches = rank["epochs"][epoch]
            assert len(batches) == rank["len"]
            for *paths, shape in batches:
                assert shape[0] == len(paths) > 0  # one stacked tensor: one bucket
                used.update(paths)
        assert used == Counter({p: 2 for p in images}), f"epoch {epoch}"
    # The resumed epoch yields the full epoch's batches after the first on each process.
    assert all(len(r["epochs"][1]) == r["len"] - 1 for r in ranks)


def _train_config(path: Path, out: Path, folder: Path, **extra) -> Path:
    from registry.config_io import save_config_file

    raw = {
        "output_dir": str(out),
        "model_family": "demo",
        "resolution": RESOLUTION,
        "train_batch_size": 2,
        "max_train_steps": 0,  # 0: num_train_epochs decides
        "num_train_epochs": 3,
        "validation_steps": 0,
        "num_processes": 2,
        "lr_scheduler": "cosine",
        "datasets": [{"path": str(folder), "bucket_step": BUCKET_STEP}],
        **extra,
    }
    save_config_file(path, raw)
    return path


def _run_trainer(config: Path) -> float:
    t0 = time.monotonic()
    res = subprocess.run(
        _launch(["-m", "trainer", "--config", str(config)]),
        cwd=REPO,
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return time.monotonic() - t0


@pytest.mark.slow
def test_two_processes_train_bucketed_epochs_and_resume_exactly(tmp_path: Path) -> None:
    folder = _aspect_folder(tmp_path)
    # 7 images in buckets of 3, 2 and 2 at batch size 2: batches [2, 1], [2], [2] give each
    # process 2 steps per epoch; 3 epochs = 6 steps (the step the old sharding failed at).
    full = tmp_path / "full"
    _run_trainer(_train_config(tmp_path / "full.toml", full, folder, checkpointing_steps=3))
    assert states(full) == ["starting", "running", "completed"]
    expected = losses(full)
    assert sorted(expected) == [1, 2, 3, 4, 5, 6]
    assert [e["data"]["epoch"] for e in read_events(full) if e["type"] == "progress"] == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    # Resume in the middle of epoch 1 (step 3 of 6) from the uninterrupted run's checkpoint.
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "checkpoint-3", resumed / "checkpoints" / "checkpoint-3")
    _run_trainer(
        _train_config(tmp_path / "resumed.toml", resumed, folder, resume_from_checkpoint="latest")
    )
    assert losses(resumed) == {s: v for s, v in expected.items() if s > 3}
