"""Each check made before Start, on real folders (no torch): what it finds and what it says."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import pytest
from PIL import Image

from app.services import preflight as pf
from registry.validation import validate_config

Usage = namedtuple("Usage", "total used free")
GB = 1024**3


def values(**raw: object) -> dict:
    return validate_config(raw).values


def image(path: Path, side: int, caption: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (side, side), "red").save(path)
    if caption is not None:
        path.with_suffix(".txt").write_text(caption)


def checks(found: list[pf.Finding]) -> dict[str, pf.Finding]:
    return {f.check: f for f in found}


def test_the_demo_defaults_pass(tmp_path: Path) -> None:
    assert pf.preflight(values(), output_root=tmp_path / "out") == []


def test_disk_space_for_the_planned_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = values(
        model_family="sd1x",
        pretrained_model_name_or_path=str(tmp_path),
        model_type="full",
        max_train_steps=500,
        checkpointing_steps=100,
        checkpoints_total_limit=3,
    )
    assert pf.planned_checkpoints(cfg) == 4  # 3 kept periodic ones + the final one
    each = pf.checkpoint_bytes(cfg)
    assert each == pytest.approx(859.5e6 * (4 + 8) + 16 * 1024**2)  # fp32 weights + AdamW
    monkeypatch.setattr(pf.shutil, "disk_usage", lambda _: Usage(100 * GB, 90 * GB, 10 * GB))
    disk = checks(pf.preflight(cfg, output_root=tmp_path))["disk"]
    assert disk.blocking and "4 checkpoint(s)" in disk.message and "10.0 GB free" in disk.message
    assert "checkpoints_total_limit" in disk.fix
    monkeypatch.setattr(pf.shutil, "disk_usage", lambda _: Usage(900 * GB, 0, 900 * GB))
    assert "disk" not in checks(pf.preflight(cfg, output_root=tmp_path))


def test_dataset_folders_must_exist_and_hold_readable_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    cfg = values(datasets=[{"path": "missing"}, {"path": "empty"}, {"path": "broken"}])
    found = pf.preflight(cfg, output_root=tmp_path / "out", datasets_root=tmp_path)
    messages = [f.message for f in found if f.check == "dataset"]
    assert len(messages) == 3 and all(f.blocking for f in found if f.check == "dataset")
    assert "does not exist" in messages[0]
    assert "no readable images (0 image files)" in messages[1]
    assert "no readable images (1 image files)" in messages[2]
    cfg = values(datasets=[{"path": "missing", "enabled": False}])
    assert pf.preflight(cfg, output_root=tmp_path / "out", datasets_root=tmp_path) == []


def test_images_without_captions_and_smaller_than_the_resolution_are_counted(
    tmp_path: Path,
) -> None:
    image(tmp_path / "ds" / "a.png", 32, "a red square")
    image(tmp_path / "ds" / "b.png", 128)
    image(tmp_path / "ds" / "c.png", 128)
    cfg = values(resolution=64, datasets=[{"path": str(tmp_path / "ds")}])
    found = checks(pf.preflight(cfg, output_root=tmp_path / "out"))
    assert "2 of 3 images have no caption" in found["captions"].message
    assert "1 of 3 images are smaller than 64 px" in found["small"].message
    assert not found["captions"].blocking and not found["small"].blocking
    assert found["small"].path == "resolution"


def test_the_base_model_must_be_reachable_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(
        "huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"), raising=False
    )

    def model(name: str) -> dict:
        return values(model_family="sd1x", pretrained_model_name_or_path=name)

    missing = checks(pf.preflight(model(str(tmp_path / "nope")), output_root=tmp_path))
    assert missing["base_model"].blocking
    (tmp_path / "local").mkdir()
    assert pf.preflight(model(str(tmp_path / "local")), output_root=tmp_path) == []

    hub = model("someone/some-model")
    offline = checks(pf.preflight(hub, output_root=tmp_path, offline=True))["base_model"]
    assert offline.blocking and "HF_HUB_OFFLINE" in offline.message
    online = checks(pf.preflight(hub, output_root=tmp_path, offline=False))["base_model"]
    assert not online.blocking and "download" in online.message
    # Once in the cache (the layout huggingface_hub writes), it is reachable offline.
    snapshot = tmp_path / "hub" / "models--someone--some-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    refs = tmp_path / "hub" / "models--someone--some-model" / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc123")
    assert pf.preflight(hub, output_root=tmp_path, offline=True) == []


def test_the_output_folder_must_be_writable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    found = checks(pf.preflight(values(), output_root=tmp_path / "a-file" / "runs"))
    assert found["output"].blocking and "is a file" in found["output"].message
