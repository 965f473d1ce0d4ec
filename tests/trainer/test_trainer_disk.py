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


def test_enough_room_passes_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # This disk's real free space: a small run goes on to training (stopped at its door).
    started: list[object] = []
    monkeypatch.setattr("trainer.loop.train", lambda cfg, **_: started.append(cfg) or 0)
    args = {
        "output_dir": str(tmp_path / "run"),
        "model_family": "demo",
        "model_type": "lora",
        "lora_rank": "4",
        "optimizer": "adamw",
        "max_train_steps": "60",
        "checkpointing_steps": "100",
        "checkpoints_total_limit": "3",
    }
    rc = cli.main([part for name, value in args.items() for part in (f"--{name}", value)])
    assert "disk space" not in capsys.readouterr().err
    assert rc == 0 and len(started) == 1
