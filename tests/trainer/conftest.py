"""Shared fixtures for trainer tests: each test's private data dir (tests/conftest.py) has the
session's models folder (the demo model is generated once), tiny SD 1.x / SDXL pipelines,
small image folders, and config helpers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import link_shared_models

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def models_shared(tunerdeck_home: Path, shared_models: Path) -> None:
    """Runs naming the demo model find the session's copy instead of generating their own."""
    link_shared_models(tunerdeck_home, shared_models)


@pytest.fixture(scope="session")
def demo_model(shared_models: Path) -> Path:
    """Generated once, into the session's models folder (session fixtures see session_home)."""
    from trainer.demo_model import ensure_demo_model

    path = ensure_demo_model()
    assert path.parent == shared_models
    return path


@pytest.fixture(scope="session")
def sd1x_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.demo_model import write_tiny_pipeline

    return write_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd1x", "sd1x")


@pytest.fixture(scope="session")
def sdxl_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.demo_model import write_tiny_pipeline

    return write_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sdxl", "sdxl")


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Six images (square, wide, tall) with sidecar captions, plus one broken file."""
    folder = tmp_path / "images"
    folder.mkdir()
    sizes = [(64, 64), (96, 48), (48, 96), (80, 80), (128, 64), (64, 128)]
    for i, (w, h) in enumerate(sizes):
        Image.new("RGB", (w, h), (40 * i, 200 - 30 * i, 90)).save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text(f"tag{i}, a color block, sample {i}")
    (folder / "broken.png").write_bytes(b"this is not a png")
    return folder


def effective(raw: dict[str, Any]) -> dict[str, Any]:
    """The effective config, exactly as `python -m trainer` builds it (registry validation)."""
    from registry.validation import validate_config

    result = validate_config(raw)
    assert result.ok, [f"{i.path}: {i.message}" for i in result.errors]
    return result.values


def fast(output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A small, quick raw config: 64 px, few steps, validation and periodic checkpoints off."""
    raw: dict[str, Any] = {
        "output_dir": str(output_dir),
        "resolution": 64,
        "max_train_steps": 3,
        "validation_steps": 0,
        "checkpointing_steps": 0,
        "validation_inference_steps": 2,
    }
    raw.update(overrides)
    return raw


def run_in_process(raw: dict[str, Any], run_id: str = "test") -> tuple[int, Any]:
    from trainer.loop import train
    from trainer.run_config import RunConfig

    cfg = RunConfig(effective(raw))
    return train(cfg, run_id=run_id), cfg


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def losses(run_dir: Path) -> dict[int, float]:
    return {
        e["data"]["step"]: e["data"]["loss"]
        for e in read_events(run_dir)
        if e["type"] == "progress"
    }


def states(run_dir: Path) -> list[str]:
    return [e["data"]["state"] for e in read_events(run_dir) if e["type"] == "lifecycle"]


def trainer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


PYTHON = sys.executable
