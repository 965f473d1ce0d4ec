"""A config with two datasets round-trips through the config file and trains a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.services.dataset_scan import combined_steps_per_epoch, scan_dataset

REPO = Path(__file__).resolve().parents[2]


def two_dataset_config(first: Path, second: Path, out: Path) -> dict[str, object]:
    return {
        "model_family": "demo",
        "output_dir": str(out),
        "resolution": 64,
        "train_batch_size": 2,
        "validation_steps": 0,
        "checkpointing_steps": 0,
        "datasets": [
            {"name": "squares", "path": str(first), "repeats": 2},
            {
                "name": "wide",
                "path": str(second),
                "caption_source": "instance_prompt",
                "instance_prompt": "a wide block",
                "bucketing": False,
                "crop": "random",
                "enabled": True,
                "random_flip": True,
            },
        ],
    }


def test_two_datasets_round_trip(make_folder: Callable[..., Path], tmp_path: Path) -> None:
    from registry.config_io import dumps_json, load_config_file, loads_json, save_config_file

    cfg = two_dataset_config(
        make_folder("a", [(64, 64)] * 3),
        make_folder("b", [(96, 48)] * 2, captions=False),
        tmp_path / "out",
    )
    path = tmp_path / "two.toml"
    save_config_file(path, cfg)
    assert load_config_file(path) == cfg
    assert loads_json(dumps_json(cfg)) == cfg
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


@pytest.mark.slow
def test_two_datasets_train_two_steps(make_folder: Callable[..., Path], tmp_path: Path) -> None:
    from registry.config_io import save_config_file
    from registry.validation import validate_config

    first = make_folder("a", [(64, 64)] * 3)
    second = make_folder("b", [(96, 48)] * 2, captions=False)
    out = tmp_path / "out"
    cfg = two_dataset_config(first, second, out)
    path = tmp_path / "two.toml"
    save_config_file(path, cfg)

    # What the tab estimates for this config: 3 images x 2 repeats + 2 images, batch 2.
    values = validate_config(cfg).values
    scans = [scan_dataset(e, 64, 2) for e in values["datasets"]]
    assert combined_steps_per_epoch(scans, 2) == 3 + 1

    env = dict(os.environ, PYTHONPATH=str(REPO))  # the test's own data dir (tests/conftest.py)
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "--config", str(path), "--max_train_steps", "2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [
        json.loads(line) for line in (out / "events.jsonl").read_text().splitlines() if line.strip()
    ]
    assert [e["data"]["state"] for e in events if e["type"] == "lifecycle"][-1] == "completed"
    assert sorted(e["data"]["step"] for e in events if e["type"] == "progress") == [1, 2]
    snapshot = (out / "config.toml").read_text()
    assert str(first) in snapshot and str(second) in snapshot
