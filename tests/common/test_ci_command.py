"""CI runs exactly the README's test command, and that command runs every check."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _command(text: str) -> str:
    lines = [
        ln.strip()
        for ln in text.splitlines()
        if ln.strip().startswith("python3 -m venv") and ln.strip().endswith("-m pytest")
    ]
    assert len(lines) == 1, lines
    return lines[0]


def test_ci_runs_the_readme_test_command() -> None:
    readme = _command((ROOT / "README.md").read_text(encoding="utf-8"))
    ci = _command((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    assert ci == readme
    steps = [step.strip() for step in readme.split("&&")]
    for check in (
        ".venv/bin/ruff format --check .",
        ".venv/bin/ruff check .",
        ".venv/bin/lint-imports",
        ".venv/bin/mypy",
        ".venv/bin/python -m pytest",
    ):
        assert check in steps
