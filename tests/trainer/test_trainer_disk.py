"""`python -m trainer` refuses a run whose checkpoints cannot fit on the disk, before loading
anything, with one message saying what to do."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import pytest

import trainer.__main__ as cli

Usage = namedtuple("Usage", "total used free")


def test_a_full_disk_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("shutil.disk_usage", lambda _: Usage(10**9, 10**9, 1024))
    rc = cli.main(["--output_dir", str(tmp_path / "run"), "--max_train_steps", "2"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "not enough free disk space" in err and "checkpoints_total_limit" in err
    run = tmp_path / "run"
    assert not (run / "events.jsonl").exists() and not (run / "reproducibility.json").exists()


def test_enough_room_passes_the_check(tmp_path: Path) -> None:
    values = {
        "output_dir": str(tmp_path / "run"),
        "pretrained_model_name_or_path": "",
        "model_family": "demo",
        "model_type": "lora",
        "lora_rank": 4,
        "optimizer": "adamw",
        "max_train_steps": 60,
        "checkpointing_steps": 100,
        "checkpoints_total_limit": 3,
    }
    assert cli._disk_problem(values) is None
