"""The server's demo-model warm-up: started only when needed, and never generating the model
twice when a first run starts meanwhile (the model's file lock)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app.services import demo_warmup
from trainer import demo_model


def test_warm_up_is_skipped_when_ready_or_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNERDECK_HOME", str(tmp_path))
    monkeypatch.setenv(demo_warmup.ENV_OFF, "1")
    assert demo_warmup.start_demo_warmup() is None
    monkeypatch.delenv(demo_warmup.ENV_OFF)
    ready = demo_model.demo_model_path()
    ready.mkdir(parents=True)
    (ready / "model_index.json").write_text("{}")
    assert demo_warmup.start_demo_warmup() is None


def test_two_callers_generate_the_demo_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNERDECK_HOME", str(tmp_path))
    calls: list[str] = []

    def slow_write(path: Path, family: str, seed: int = 0) -> Path:
        calls.append(family)
        time.sleep(0.5)  # long enough for the other caller to arrive meanwhile
        path.mkdir(parents=True)
        (path / "model_index.json").write_text("{}")
        return path

    monkeypatch.setattr(demo_model, "write_tiny_pipeline", slow_write)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(demo_model.ensure_demo_model()))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["demo"]
    assert results == [demo_model.demo_model_path()] * 2
