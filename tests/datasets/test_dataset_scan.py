"""Scanning: counts, unreadable files, histograms, buckets and steps per epoch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.services import buckets
from app.services.dataset_scan import (
    ASPECT_LABELS,
    SIDE_LABELS,
    ProbeCache,
    combined_steps_per_epoch,
    scan_dataset,
)
from registry.defaults import default_dataset
from tests.datasets.conftest import write_broken, write_image

ENTRY = {**default_dataset(), "path": "", "enabled": True}


def entry(folder: Path, **over: object) -> dict[str, object]:
    return {**ENTRY, "path": str(folder), **over}


def test_five_unreadable_of_fifty_are_reported_exactly(make_folder: Callable[..., Path]) -> None:
    folder = make_folder("fifty", [(64, 64)] * 45)
    broken = {f"broken_{k}.png" for k in range(3)} | {"broken_3.jpg", "broken_4.webp"}
    for k, name in enumerate(sorted(broken)):
        write_broken(folder / name, k)
    (folder / "notes.md").write_text("not an image, not counted")
    result = scan_dataset(entry(folder), resolution=64)
    assert result.image_count == 50
    assert result.readable_count == 45
    assert {name for name, _ in result.unreadable} == broken
    assert all(reason for _, reason in result.unreadable)


def test_counts_and_histograms_agree_with_the_folder(make_folder: Callable[..., Path]) -> None:
    sizes = [(100, 100)] * 4 + [(600, 300)] * 3 + [(300, 600)] * 2 + [(1024, 1024)] * 1
    folder = make_folder("known", sizes, captions=[True] * 8 + [False] * 2)
    result = scan_dataset(entry(folder, repeats=3), resolution=256, batch_size=2)

    assert (result.image_count, result.readable_count, result.unreadable) == (10, 10, [])
    assert result.missing_captions == ["img_008.png", "img_009.png"]
    assert list(result.side_histogram) == list(SIDE_LABELS)
    assert sum(result.side_histogram.values()) == 10
    assert result.side_histogram["< 256"] == 4  # the 100×100 ones
    assert result.side_histogram["256–511"] == 5  # shorter side 300
    assert result.side_histogram["1024–1535"] == 1
    assert list(result.aspect_histogram) == list(ASPECT_LABELS)
    assert result.aspect_histogram["0.95–1.05"] == 5
    assert result.aspect_histogram["≥ 2.00"] == 3  # 600/300 = 2.0
    assert result.aspect_histogram["< 0.50"] + result.aspect_histogram["0.50–0.67"] == 2
    assert result.smaller_than_resolution == 4

    # Buckets at 256 (step 64, ratio <= 2): the closest ratios are 5:3 and 3:5.
    assert result.images_per_bucket == {"192×320": 2, "256×256": 5, "320×192": 3}
    assert result.samples_per_bucket == {"192×320": 6, "256×256": 15, "320×192": 9}  # x3 repeats
    assert result.steps_per_epoch == 3 + 8 + 5  # batches of 2 never mix buckets


def test_steps_per_epoch_merges_datasets_and_counts_accumulation(
    make_folder: Callable[..., Path],
) -> None:
    a = scan_dataset(entry(make_folder("a", [(64, 64)] * 3)), resolution=64, batch_size=4)
    b = scan_dataset(entry(make_folder("b", [(64, 64)] * 3)), resolution=64, batch_size=4)
    assert (a.steps_per_epoch, b.steps_per_epoch) == (1, 1)
    assert combined_steps_per_epoch([a, b], batch_size=4) == 2  # 6 samples, one bucket
    assert combined_steps_per_epoch([a, b], batch_size=1, gradient_accumulation_steps=4) == 2


def test_missing_folder_and_no_bucketing(make_folder: Callable[..., Path], tmp_path: Path) -> None:
    assert "does not exist" in (scan_dataset(entry(tmp_path / "nope"), 64).error or "")
    assert scan_dataset({**ENTRY}, 64).error == "no folder chosen"
    folder = make_folder("crop", [(300, 100), (100, 300)])
    result = scan_dataset(entry(folder, bucketing=False), resolution=128)
    assert result.images_per_bucket == {"128×128": 2}


def test_probes_are_reused_until_the_file_changes(make_folder: Callable[..., Path]) -> None:
    folder = make_folder("cache", [(64, 64)])
    cache = ProbeCache()
    assert scan_dataset(entry(folder), 64, cache=cache).aspect_histogram["0.95–1.05"] == 1
    write_image(folder / "img_000.png", (90, 40))
    assert scan_dataset(entry(folder), 64, cache=cache).aspect_histogram["≥ 2.00"] == 1


def test_scan_buckets_match_the_trainers_records(make_folder: Callable[..., Path]) -> None:
    """The scan's per-bucket counts are the buckets the trainer's data loader assigns."""
    from collections import Counter

    from registry.defaults import default_dataset
    from trainer.data import scan_entry

    sizes = [(100, 100), (192, 108), (60, 90), (50, 400), (400, 100), (64, 64)]
    folder = make_folder("mixed", sizes)
    effective = {**default_dataset(), **entry(folder)}
    records = scan_entry(effective, 0, 128, warn=lambda _message: None)
    trained = Counter(buckets.bucket_label(r.bucket) for r in records)
    assert scan_dataset(effective, resolution=128).images_per_bucket == dict(trained)
