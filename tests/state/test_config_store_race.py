"""Several processes sharing one data dir "save as" the same new name at the same moment:
exactly one wins, every other one is told the name exists, and the file holds the winner's
config whole."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from registry.config_io import load_config_file
from state.config_store import ConfigStore, ConfigStoreError

RACERS = 20


def _save_as(root: str, index: int, barrier, results) -> None:  # type: ignore[no-untyped-def]  # runs in a spawned process; mp types
    store = ConfigStore(Path(root))
    config = {"max_train_steps": 1000 + index, "seed": index}
    barrier.wait()
    try:
        store.save("shared name", config, overwrite=False)
        results.put((index, "saved"))
    except ConfigStoreError as exc:
        results.put((index, str(exc)))


def test_concurrent_save_as_of_one_name_has_exactly_one_winner(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(RACERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_save_as, args=(str(tmp_path), i, barrier, results))
        for i in range(RACERS)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    winners = [i for i, outcome in outcomes if outcome == "saved"]
    assert len(winners) == 1, outcomes
    assert all("already exists" in o for _, o in outcomes if o != "saved")
    saved = load_config_file(tmp_path / "shared name.toml")
    assert saved == {"max_train_steps": 1000 + winners[0], "seed": winners[0]}
    assert ConfigStore(tmp_path).names() == ["shared name"]  # no temp file left or listed


def test_rename_never_overwrites_a_config_created_meanwhile(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.save("a", {"seed": 1})
    store.save("b", {"seed": 2})
    try:
        store.rename("a", "b")
        raise AssertionError("rename overwrote b")
    except ConfigStoreError as exc:
        assert "already exists" in str(exc)
    assert load_config_file(tmp_path / "b.toml") == {"seed": 2}
    assert store.rename("a", "c") == tmp_path / "c.toml"
    assert store.names() == ["b", "c"]
