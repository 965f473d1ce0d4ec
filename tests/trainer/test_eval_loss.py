"""The eval loss: held-out images never train, the number is fixed for fixed weights (the same
in two runs before their first step) and moves with training; eval_split 1 is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.trainer.conftest import fast, read_events, run_in_process


def _entries(folder: Path, **extra: object) -> list:
    from registry.defaults import default_dataset
    from trainer.run_config import RunConfig

    entry = default_dataset()
    entry.update({"path": str(folder), **extra})
    return [RunConfig(entry)]


def test_held_out_images_never_appear_in_training_batches(image_folder: Path) -> None:
    from trainer.data import build_train_data
    from trainer.eval_loss import split_eval

    entries = _entries(image_folder, eval_split=2, repeats=3)
    data = build_train_data(entries, 64, 2, seed=7, shuffle=True, warn=lambda _m: None)
    train, held = split_eval(entries, data, 7, lambda _m: None)
    held_paths = {r.path for r in held}
    assert len(held_paths) == 2 and len(train.records) == 4
    seen = set()
    for epoch in range(5):
        train.sampler.set_epoch(epoch)
        for batch in train.sampler:
            seen |= {train.dataset.records[idx].path for idx, _ in batch}
    assert seen == {r.path for r in train.records}
    assert not seen & held_paths
    again = split_eval(
        entries, build_train_data(entries, 64, 2, 7, True, lambda _m: None), 7, print
    )
    assert {r.path for r in again[1]} == held_paths  # deterministic by seed


def test_an_eval_dataset_is_held_out_whole(image_folder: Path, tmp_path: Path) -> None:
    from trainer.data import build_train_data
    from trainer.eval_loss import split_eval

    evals = tmp_path / "eval"
    evals.mkdir()
    for name in ("img0.png", "img1.png"):
        shutil.move(image_folder / name, evals / name)
    entries = _entries(image_folder) + _entries(evals, kind="eval")
    data = build_train_data(entries, 64, 2, seed=0, shuffle=True, warn=lambda _m: None)
    train, held = split_eval(entries, data, 0, lambda _m: None)
    assert sorted(r.path.name for r in held) == ["img0.png", "img1.png"]
    assert all(r.path.parent == image_folder for r in train.records)


def test_eval_split_of_one_is_refused_and_zero_holds_none_out(image_folder: Path) -> None:
    from registry.validation import validate_config

    for split, refused in ((1, True), (2.5, True), (0, False), (0.2, False), (3, False)):
        result = validate_config({"datasets": [{"path": str(image_folder), "eval_split": split}]})
        messages = [i.message for i in result.errors if i.path == "datasets[0].eval_split"]
        assert bool(messages) == refused, (split, messages)
    result = validate_config({"datasets": [{"path": str(image_folder), "eval_split": 1}]})
    assert "ambiguous" in result.errors[0].message


@pytest.mark.slow
def test_eval_loss_is_fixed_for_the_same_weights_and_moves_with_training(
    image_folder: Path, tmp_path: Path, demo_model: Path
) -> None:
    evals = tmp_path / "eval"
    evals.mkdir()
    for name in ("img0.png", "img0.txt", "img3.png", "img3.txt"):
        shutil.move(image_folder / name, evals / name)
    datasets = [{"path": str(image_folder)}, {"path": str(evals), "kind": "eval"}]

    def eval_losses(run: Path, **overrides: object) -> dict[int, float]:
        raw = fast(run, datasets=datasets, learning_rate=1e-2, **overrides)
        code, _ = run_in_process(raw)
        events = read_events(run)
        assert code == 0, events[-1]
        return {e["data"]["step"]: e["data"]["loss"] for e in events if e["type"] == "eval"}

    a = eval_losses(tmp_path / "a", eval_steps=2, max_train_steps=4, seed=1)
    b = eval_losses(tmp_path / "b", eval_steps=1, max_train_steps=1, seed=2)
    assert sorted(a) == [0, 2, 4] and sorted(b) == [0, 1]
    # The same weights (the base model before step 1) in two runs with other seeds: the same.
    assert a[0] == b[0]
    assert a[4] != a[0] and a[2] != a[0]
