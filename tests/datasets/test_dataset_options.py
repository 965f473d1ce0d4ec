"""Caption strategies, tag dropout, size filters, masks in the scan, and the refusal of an
empty regularization dataset: what the trainer uses and what the UI's scan reports agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.services.dataset_scan import scan_dataset
from registry.defaults import default_dataset
from registry.validation import validate_config
from tests.datasets.conftest import write_image
from tunerdeck_common.dataset_rules import caption_for


def _entry(folder: Path, **over: Any) -> dict[str, Any]:
    return {**default_dataset(), "path": str(folder), **over}


# ---- captions --------------------------------------------------------------------------------


def test_each_caption_strategy_gives_the_expected_caption(tmp_path: Path) -> None:
    with_file = write_image(tmp_path / "red_fox-running.png", (8, 8))
    with_file.with_suffix(".txt").write_text("a fox, snow\n")
    without = write_image(tmp_path / "blue_jay.png", (8, 8))

    def caption(image: Path, **over: Any) -> str:
        return caption_for(image, _entry(tmp_path, instance_prompt="sks bird", **over))

    assert caption(with_file, caption_strategy="textfile") == "a fox, snow"
    assert caption(without, caption_strategy="textfile") == ""
    assert caption(with_file, caption_strategy="filename") == "red fox running"
    assert caption(with_file, caption_strategy="instance_prompt") == "sks bird"
    assert caption(with_file, caption_strategy="textfile_or_filename") == "a fox, snow"
    assert caption(without, caption_strategy="textfile_or_filename") == "blue jay"
    assert caption(without, caption_strategy="filename", prepend_instance_prompt=True) == (
        "sks bird, blue jay"
    )
    assert caption(without, prepend_instance_prompt=True, caption_prefix="style") == (
        "style, sks bird"
    )


def test_configs_with_caption_source_are_read_as_caption_strategy(tmp_path: Path) -> None:
    for old, new in [
        ("sidecar", "textfile"),
        ("filename", "filename"),
        ("instance_prompt", "instance_prompt"),
    ]:
        raw = {"datasets": [{"path": str(tmp_path), "caption_source": old, "instance_prompt": "x"}]}
        result = validate_config(raw)
        assert result.ok, result.errors
        assert result.values["datasets"][0]["caption_strategy"] == new
    # and the trainer's rule reads an entry that still says caption_source
    image = write_image(tmp_path / "a_b.png", (8, 8))
    assert caption_for(image, {"caption_source": "filename"}) == "a b"


def test_tag_dropout_drops_tags_at_about_its_rate_and_keeps_the_kept_tokens(
    tmp_path: Path,
) -> None:
    from trainer.data import ImageCaptionDataset, scan_entry

    tags = [f"tag{i}" for i in range(10)]
    image = write_image(tmp_path / "img.png", (64, 64))
    image.with_suffix(".txt").write_text(", ".join(tags))
    entry = _entry(tmp_path, caption_tag_dropout=0.3, keep_tokens=1)
    records = scan_entry(entry, 0, 64, warn=lambda _m: None)
    dataset = ImageCaptionDataset(records, [entry], 64)
    kept = dropped = 0
    for seed in range(2000):
        words = dataset.plan((0, seed)).caption.split(", ")
        assert words[0] == "tag0"  # keep_tokens: never dropped
        assert [t for t in tags if t in words] == words  # order kept (no shuffle asked)
        kept += len(words) - 1
        dropped += 9 - (len(words) - 1)
    rate = dropped / (kept + dropped)
    assert 0.28 < rate < 0.32, rate
    # The same item always gets the same caption (what the text cache is filled with).
    assert dataset.plan((0, 5)).caption == dataset.plan((0, 5)).caption


def test_the_text_cache_plan_holds_every_tag_dropout_variant_the_batches_use(
    tmp_path: Path,
) -> None:
    from trainer.caches import planned_items
    from trainer.data import BucketBatchSampler, ImageCaptionDataset, collate, scan_entry

    for i in range(3):
        write_image(tmp_path / f"img{i}.png", (64, 64)).with_suffix(".txt").write_text(
            f"subject{i}, red, round, shiny, small"
        )
    entry = _entry(tmp_path, caption_tag_dropout=0.5, repeats=4)
    records = scan_entry(entry, 0, 64, warn=lambda _m: None)
    dataset = ImageCaptionDataset(records, [entry], 64)
    sampler = BucketBatchSampler(records, [4], 2, 11, True)

    def epoch_batches(epoch: int) -> Any:
        sampler.set_epoch(epoch)
        return iter(sampler)

    planned = {p.caption for p in planned_items(dataset, epoch_batches, range(2))}
    used = set()
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for batch in sampler:
            used |= set(collate([dataset[item] for item in batch])["captions"])
    assert used == planned and len(used) > 3  # dropout made several variants, all cached


# ---- size filters ----------------------------------------------------------------------------


def test_size_filters_drop_images_and_the_scan_says_how_many_and_why(
    make_folder: Callable[..., Path],
) -> None:
    from trainer.data import DatasetError, scan_entry

    folder = make_folder("sizes", [(32, 32), (64, 48), (128, 128), (256, 200), (600, 600)])
    entry = _entry(folder, minimum_image_size=48, maximum_image_size=300)
    warnings: list[str] = []
    kept = scan_entry(entry, 0, 64, warnings.append)
    assert [r.size for r in kept] == [(64, 48), (128, 128), (256, 200)]
    assert any("left out 1 image(s) smaller than minimum_image_size 48" in w for w in warnings)
    assert any("left out 1 image(s) larger than maximum_image_size 300" in w for w in warnings)
    scan = scan_dataset(entry, resolution=64)
    assert scan.readable_count == 5 and scan.trained_count == 3
    assert scan.filter_counts() == {
        "smaller than minimum_image_size 48 px (shorter side)": 1,
        "larger than maximum_image_size 300 px (shorter side)": 1,
    }
    assert sum(scan.images_per_bucket.values()) == 3
    assert "2 left out by size filters" in scan.summary()
    # area: megapixels; 128x128 = 0.016 MP
    area = _entry(folder, minimum_image_size=0.01, resolution_type="area")
    assert [r.size for r in scan_entry(area, 0, 64, lambda _m: None)] == [
        (128, 128),
        (256, 200),
        (600, 600),
    ]
    assert len(scan_dataset(area, resolution=64).filtered) == 2
    with pytest.raises(DatasetError, match="size filters left out 5"):
        scan_entry(_entry(folder, minimum_image_size=5000), 0, 64, lambda _m: None)


# ---- masks in the scan -----------------------------------------------------------------------


def test_the_scan_reports_missing_and_resized_masks_and_skips_mask_files(tmp_path: Path) -> None:
    folder = tmp_path / "masked"
    for name in ("a", "b", "c"):
        write_image(folder / f"{name}.png", (64, 64))
    Image.new("L", (64, 64), 255).save(folder / "a_mask.png")
    (folder / "masks").mkdir()
    Image.new("L", (32, 32), 255).save(folder / "masks" / "b.png")  # another size
    scan = scan_dataset(_entry(folder, mask_source="file"), resolution=64)
    assert scan.image_count == 3  # a_mask.png is a mask, not an image
    assert scan.missing_masks == ["c.png"]
    assert scan.resized_masks == ["b.png: 32x32, image 64x64"]
    assert "1 without mask" in scan.summary() and "1 masks resized" in scan.summary()


# ---- regularization datasets -----------------------------------------------------------------


def test_a_regularization_dataset_without_images_is_refused_before_start(tmp_path: Path) -> None:
    train = tmp_path / "train"
    write_image(train / "x.png", (64, 64))
    empty = tmp_path / "class"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    raw = {
        "datasets": [
            {"path": str(train)},
            {"path": str(empty), "kind": "regularization"},
        ]
    }
    result = validate_config(raw)
    messages = {i.path: i.message for i in result.errors}
    assert "holds no images" in messages["datasets[1].path"]
    assert "regularization" in messages["datasets[1].path"]
    write_image(empty / "dog.png", (64, 64))
    assert validate_config(raw).ok


def test_the_scan_result_carries_the_kind(make_folder: Callable[..., Path]) -> None:
    folder = make_folder("reg", [(64, 64)])
    assert scan_dataset(_entry(folder, kind="regularization"), resolution=64).kind == (
        "regularization"
    )
