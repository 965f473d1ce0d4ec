"""Preferences: defaults, persistence, whitelist, and recovery from a corrupt file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from state.web_ui_state import ONBOARDING_STEPS, WebUIStateStore


def test_defaults_when_no_file(tmp_path: Path) -> None:
    store = WebUIStateStore(tmp_path / "webui.json")
    assert store.prefs.theme == "auto"
    assert store.recovery_message is None
    assert not (tmp_path / "webui.json").exists()  # nothing written until something changes


def test_changes_persist_for_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "webui.json"
    store = WebUIStateStore(path)
    store.update(theme="dark", output_root="/data/runs")
    store.remember_accelerate_overrides({"num_processes": 2, "learning_rate": 1.0})
    store.set_onboarding_step("add_dataset")
    again = WebUIStateStore(path)
    assert again.prefs.theme == "dark"
    assert again.prefs.output_root == "/data/runs"
    assert again.prefs.accelerate_overrides == {"num_processes": 2}  # not whitelisted: dropped
    assert again.prefs.onboarding.is_done("add_dataset")
    assert [done for _, _, done in again.onboarding_steps()] == [
        key == "add_dataset" for key, _ in ONBOARDING_STEPS
    ]


def test_bad_change_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "webui.json"
    store = WebUIStateStore(path)
    store.update(theme="light")
    before = path.read_text()
    with pytest.raises(ValidationError):
        store.update(theme="purple")
    with pytest.raises(ValidationError):
        store.update(accelerate_overrides={"learning_rate": 1})
    assert path.read_text() == before
    assert store.prefs.theme == "light"


@pytest.mark.parametrize("content", ["{ not json", "[1, 2]", '{"theme": "neon"}', "\xff\xfe"])
def test_corrupt_file_is_backed_up_and_replaced(tmp_path: Path, content: str) -> None:
    path = tmp_path / "webui.json"
    path.write_bytes(content.encode("latin-1"))
    store = WebUIStateStore(path)
    assert store.prefs.theme == "auto"
    assert store.recovery_message and str(path) in store.recovery_message
    backups = list(tmp_path.glob("webui.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == content.encode("latin-1")
    assert json.loads(path.read_text())["theme"] == "auto"  # a good file is back in place
    assert WebUIStateStore(path).recovery_message is None


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "webui.json"
    path.write_text(json.dumps({"theme": "dark", "from_a_newer_version": 1}))
    store = WebUIStateStore(path)
    assert store.prefs.theme == "dark" and store.recovery_message is None
