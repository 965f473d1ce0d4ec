"""The server's demo-model warm-up: started only when needed, and never generating the model
twice when a first run starts meanwhile (the model's file lock)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.services import demo_warmup
from tests.waiting import wait_until
from trainer import demo_model


@pytest.fixture
def no_models(tunerdeck_home: Path) -> None:
    """An empty models folder: these tests make the demo model (a stand-in) themselves."""
    (tunerdeck_home / "models").unlink()


def test_warm_up_is_skipped_when_ready_or_turned_off(
    no_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(demo_warmup.ENV_OFF, "1")
    assert demo_warmup.start_demo_warmup() is None
    monkeypatch.delenv(demo_warmup.ENV_OFF)
    ready = demo_model.demo_model_path()
    ready.mkdir(parents=True)
    (ready / "model_index.json").write_text("{}")
    assert demo_warmup.start_demo_warmup() is None


def test_two_callers_generate_the_demo_model_once(
    no_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    arrived: list[int] = []

    def slow_write(path: Path, family: str, seed: int = 0) -> Path:
        calls.append(family)
        # Still generating when the other caller arrives: it must wait, not generate too.
        wait_until(lambda: len(arrived) == 2, 30, what="the second caller")
        path.mkdir(parents=True)
        (path / "model_index.json").write_text("{}")
        return path

    monkeypatch.setattr(demo_model, "write_tiny_pipeline", slow_write)
    results: list[Path] = []

    def caller() -> None:
        arrived.append(1)
        results.append(demo_model.ensure_demo_model())

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["demo"]
    assert results == [demo_model.demo_model_path()] * 2
