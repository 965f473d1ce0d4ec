"""Named configs: sparse values round-trip exactly; bad names and clashes are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from state.config_store import ConfigStore, ConfigStoreError

SPARSE = {"max_train_steps": 500, "learning_rate": 0.0002, "datasets": [{"path": "/data/cats"}]}


def test_save_load_round_trip(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "configs")
    store.save("cats v1", SPARSE)
    assert store.names() == ["cats v1"]
    assert store.load("cats v1") == SPARSE  # 500 equals the default and is still kept


def test_rename_duplicate_delete(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.save("a", SPARSE)
    store.duplicate("a", "b")
    store.rename("a", "c")
    assert store.names() == ["b", "c"]
    with pytest.raises(ConfigStoreError, match="already exists"):
        store.rename("b", "c")
    with pytest.raises(ConfigStoreError, match="already exists"):
        store.save("b", {}, overwrite=False)
    store.delete("b")
    assert store.names() == ["c"]
    with pytest.raises(ConfigStoreError, match="no saved config"):
        store.load("b")


@pytest.mark.parametrize("name", ["", "../up", "a/b", ".hidden", "x" * 81, "trailing."])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    store = ConfigStore(tmp_path)
    with pytest.raises(ConfigStoreError):
        store.save(name, SPARSE)
    assert list(tmp_path.iterdir()) == []


def test_value_toml_cannot_hold_leaves_old_file(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.save("keep", SPARSE)
    before = store.path_for("keep").read_bytes()
    with pytest.raises((TypeError, ValueError)):
        store.save("keep", {"max_train_steps": object()})
    assert store.path_for("keep").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.toml"]
