"""The prompt library is checked before a run: a broken file is refused with a message that
names the line or the entry; a relative path in a config file is read beside that file; and
validation_on_startup is read under its older names."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.cli import build_parser, explicit_values
from registry.config_io import ConfigFileError, load_config_file, parse_config_text
from registry.prompt_library import LibraryPrompt, load_prompt_library
from registry.validation import validate_config


def _errors(library: Path) -> list[str]:
    result = validate_config({"user_prompt_library": str(library), "validation_steps": 10})
    return [str(i) for i in result.errors]


def test_a_good_library_in_toml_and_in_simpletuner_json(tmp_path: Path) -> None:
    toml = tmp_path / "prompts.toml"
    toml.write_text('plain = "a cat"\n[beach]\nprompt = "a dog"\nseed = 7\nnegative_prompt = "x"\n')
    assert load_prompt_library(toml) == [
        LibraryPrompt("plain", "a cat"),
        LibraryPrompt("beach", "a dog", 7, "x"),
    ]
    json = tmp_path / "user_prompt_library.json"
    json.write_text('{"anime_sks": "an anime sks", "chef_sks": {"prompt": "sks chef", "seed": 1}}')
    assert [(p.name, p.seed) for p in load_prompt_library(json)] == [
        ("anime_sks", None),
        ("chef_sks", 1),
    ]
    assert _errors(toml) == [] and _errors(json) == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.toml", 'a = "x"\nb = \n', "at line 2"),
        ("bad.json", '{"a": "x",\n "b": }', "line 2, column 7"),
        ("dup.json", '{"a": "x", "a": "y"}', "the name 'a' appears twice"),
        ("seed.toml", '[b]\nprompt = "y"\nseed = "z"\n', "entry 'b': seed must be a whole number"),
        ("key.toml", '[b]\nprompt = "y"\nsed = 1\n', "entry 'b': unknown key 'sed'"),
        ("empty.toml", "[b]\nseed = 1\n", "entry 'b': needs a non-empty text 'prompt'"),
        ("list.json", '["a", "b"]', "must hold named prompts"),
        ("none.toml", "", "no prompts"),
    ],
)
def test_a_broken_library_is_refused_naming_where(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    (error,) = _errors(path)
    assert error.startswith("user_prompt_library: ") and expected in error, error


def test_a_missing_library_is_refused_but_only_while_validation_is_on(tmp_path: Path) -> None:
    (error,) = _errors(tmp_path / "nope.toml")
    assert "no such file" in error
    off = {"user_prompt_library": str(tmp_path / "nope.toml"), "validation_steps": 0}
    assert validate_config(off).ok  # greyed out: nothing reads it


def test_a_relative_library_is_read_beside_its_config(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "prompts.toml").write_text('a = "a cat"\n')
    (folder / "run.toml").write_text('user_prompt_library = "prompts.toml"\n')
    raw = load_config_file(folder / "run.toml")
    assert raw["user_prompt_library"] == str(folder / "prompts.toml")
    assert validate_config(raw).ok


def test_validation_on_startup_is_read_under_its_older_names() -> None:
    for old in ("validation_at_start", "validation_on_start"):
        raw = parse_config_text(f"{old} = true\n")
        assert raw == {"validation_on_startup": True}  # saved back under today's name
        assert validate_config({old: True}).values["validation_on_startup"] is True
        flags = build_parser().parse_args([f"--{old}", "true"])
        assert explicit_values(flags) == {"validation_on_startup": True}
    # a browser's draft saved before the rename keeps its value in the form
    from app.services.form_state import FormState
    from registry.evaluator import PlatformContext

    draft = {"explicit": {"validation_at_start": True}}
    form = FormState.from_draft(draft, PlatformContext(device="cpu"))
    assert form.explicit == {"validation_on_startup": True}
    with pytest.raises(ConfigFileError, match="another name of 'validation_on_startup'"):
        parse_config_text("validation_at_start = true\nvalidation_on_startup = false\n")
