"""The `python -m trainer` parser comes from the catalogue; configs turn back into commands."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from registry.catalogue import FIELDS, TABS
from registry.cli import build_parser, command_line, explicit_values

ROOT = Path(__file__).resolve().parents[2]


def test_only_given_flags_are_explicit() -> None:
    args = build_parser().parse_args(
        [
            "--config",
            "run.toml",
            "--lora_rank",
            "16",
            "--learning_rate",
            "2e-4",
            "--use_ema",
            "--gradient_checkpointing",
            "false",
            "--lora_target_modules",
            "to_q,to_k",
            "--optimizer",
            "prodigy",
        ]
    )
    assert args.config == "run.toml"
    assert explicit_values(args) == {
        "lora_rank": 16,
        "learning_rate": 2e-4,
        "use_ema": True,
        "gradient_checkpointing": False,
        "lora_target_modules": ["to_q", "to_k"],
        "optimizer": "prodigy",
    }


def test_no_flags_means_no_explicit_values() -> None:
    args = build_parser().parse_args([])
    assert explicit_values(args) == {} and args.config is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lora_rank", "eight"], "expected a whole number, got 'eight'"),
        (["--learning_rate", "fast"], "expected a number, got 'fast'"),
        (["--use_ema", "maybe"], "expected true or false, got 'maybe'"),
        (["--optimizer", "adam"], "invalid choice: 'adam'"),
        (["--lerning_rate", "1"], "unrecognized arguments: --lerning_rate"),
    ],
)
def test_bad_flags_are_rejected_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_help_lists_every_field_grouped_by_tab() -> None:
    text = build_parser().format_help()
    for name in FIELDS:
        assert f"--{name}" in text
    for tab in TABS[:-1]:  # the datasets tab has no flags
        assert f"{tab.title} options" in text
    assert "shown only when optimizer is adamw or adamw8bit" in text


def test_command_line_round_trips_through_the_parser() -> None:
    cfg = {
        "learning_rate": 1e-4,
        "use_ema": False,
        "validation_prompt": "a cat\nit's a dog",
        "lora_target_modules": ["to_q", "to_k"],
        "output_dir": "/runs/my run",
    }
    words = shlex.split(command_line(cfg, "python"))
    assert words[:3] == ["python", "-m", "trainer"]
    assert explicit_values(build_parser().parse_args(words[3:])) == cfg


def test_datasets_go_through_a_config_file() -> None:
    line = command_line({"seed": 1, "datasets": [{"path": "/d"}]}, "python", config_path="run.toml")
    assert line == "python -m trainer --config run.toml --seed 1"


def test_trainer_help_does_not_import_torch() -> None:
    code = (
        "import sys, runpy; sys.argv=['trainer','--help']\n"
        "try:\n    runpy.run_module('trainer', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "--learning_rate" in out.stdout
    assert out.stdout.strip().endswith("NO-TORCH")


def test_registry_imports_nothing_heavy() -> None:
    code = (
        "import sys, registry.cli, registry.validation, registry.docs, registry.config_io\n"
        "heavy = {'torch', 'diffusers', 'accelerate', 'nicegui', 'transformers'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
