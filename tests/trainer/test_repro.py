"""The reproducibility record: what it holds, and that a changed dataset or model is noticed."""

from __future__ import annotations

import os
from pathlib import Path

from registry.validation import validate_config
from trainer.__main__ import _write_repro_record
from tunerdeck_common import repro


def test_the_record_holds_config_command_versions_and_fingerprints(tmp_path: Path) -> None:
    data = tmp_path / "images"
    data.mkdir()
    (data / "a.png").write_bytes(b"x" * 10)
    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    (model / "unet" / "w.safetensors").write_bytes(b"y" * 20)
    values = validate_config(
        {
            "model_family": "sd1x",
            "pretrained_model_name_or_path": str(model),
            "output_dir": str(tmp_path / "run"),
            "datasets": [{"path": str(data)}],
        }
    ).values
    _write_repro_record(values, ["--config", "run.toml"])
    record = repro.read_record(tmp_path / "run")
    assert record is not None
    assert record["config"]["pretrained_model_name_or_path"] == str(model)
    assert record["command"][-2:] == ["--config", "run.toml"]
    assert record["packages"]["diffusers"] and record["packages"]["torch"]
    assert "gpus" in record and "driver" in record
    assert record["datasets"][0]["files"] == 1 and record["datasets"][0]["bytes"] == 10
    assert record["base_model"]["files"] == 1
    assert repro.changes(record) == []

    (data / "b.png").write_bytes(b"z")
    weights = model / "unet" / "w.safetensors"
    weights.write_bytes(b"y" * 21)
    said = repro.changes(record)
    assert any("dataset" in s and "1 files then, 2 now" in s for s in said)
    assert any("base model" in s for s in said)


def test_a_touched_file_changes_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("caption")
    before = repro.fingerprint(tmp_path)
    assert repro.fingerprint(tmp_path) == before
    stat = (tmp_path / "a.txt").stat()
    os.utime(tmp_path / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert repro.fingerprint(tmp_path)["sha256"] != before["sha256"]
    assert repro.fingerprint(tmp_path / "gone") == {"path": str(tmp_path / "gone"), "missing": True}
