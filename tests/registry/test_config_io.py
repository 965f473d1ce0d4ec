"""Config files: TOML and JSON, sparse, exact, atomic, with every problem reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry.config_io import (
    ConfigFileError,
    dumps_toml,
    load_config_file,
    loads_toml,
    save_config_file,
)

CONFIG = {
    "model_type": "lora",
    "learning_rate": 1e-4,  # equal to today's default, and still kept
    "lora_alpha": 8.0,
    "lora_target_modules": ["to_q", "to_v"],
    "validation_prompt": "a cat\na dog",
    "datasets": [{"path": "/data/cats", "repeats": 3}, {"path": "/data/dogs", "enabled": False}],
}


def test_datasets_are_written_as_a_list_of_tables() -> None:
    text = dumps_toml(CONFIG)
    assert text.count("[[datasets]]") == 2
    assert 'path = "/data/cats"' in text
    assert text.index("learning_rate") < text.index("[[datasets]]")


@pytest.mark.parametrize("name", ["run.toml", "run.json"])
def test_save_then_load_returns_exactly_what_was_saved(tmp_path: Path, name: str) -> None:
    path = tmp_path / "sub" / name
    save_config_file(path, CONFIG)
    assert load_config_file(path) == CONFIG
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temp files left behind


def test_a_value_equal_to_the_default_stays_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    save_config_file(path, {"learning_rate": 1e-4})
    assert "learning_rate" in path.read_text()
    assert load_config_file(path) == {"learning_rate": 1e-4}


def test_save_is_atomic_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.toml"
    save_config_file(path, {"seed": 1})

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_config_file(path, {"seed": 2})
    assert loads_toml(path.read_text()) == {"seed": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.toml"]


def test_invalid_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'lerning_rate = 1e-4\nlora_rank = "8"\n[[datasets]]\nrepeats = 0\npath = "/x"\n'
    )
    with pytest.raises(ConfigFileError) as info:
        load_config_file(path)
    assert info.value.errors == [
        "lerning_rate: unknown option 'lerning_rate'; did you mean 'learning_rate'?",
        "lora_rank: must be a whole number, not the text '8'",
        "datasets[0].repeats: must be at least 1 (got 0)",
    ]
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("broken.toml", "learning_rate = = 1", "not valid TOML"),
        ("broken.json", "{'a': 1}", "not valid JSON"),
        ("list.json", "[1, 2]", "not valid JSON: a config must be a JSON object"),
        ("binary.toml", b"\xff\xfe\x00", "not UTF-8 text"),
    ],
)
def test_unparsable_files(tmp_path: Path, name: str, content: str | bytes, expected: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigFileError) as info:
        load_config_file(path)
    assert info.value.errors[0].startswith(expected)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="does not exist"):
        load_config_file(tmp_path / "nope.toml")
    with pytest.raises(ConfigFileError, match="folder"):
        load_config_file(tmp_path)


def test_carriage_returns_survive_toml() -> None:
    cfg = {"validation_prompt": "a\r\nb\r"}
    assert loads_toml(dumps_toml(cfg)) == cfg


def test_an_unfinished_config_still_loads(tmp_path: Path) -> None:
    """A saved work in progress (a real model, no base model or dataset chosen yet) loads;
    starting a run is what reports what is missing."""
    cfg = {
        "model_family": "sdxl",
        "datasets": [{"repeats": 2}],
        "min_timestep": 900,
        "max_timestep": 100,
    }
    path = tmp_path / "wip.toml"
    save_config_file(path, cfg)
    assert load_config_file(path) == cfg
