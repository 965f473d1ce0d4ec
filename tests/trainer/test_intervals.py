"""When validation and checkpoints are due: every N steps, every N epochs, or both."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config_io import ConfigFileError, load_config_file
from trainer.intervals import due


def _due_steps(per_epoch: int, every_steps: int, every_epochs: int, total: int) -> list[int]:
    return [s for s in range(1, total + 1) if due(s, per_epoch, every_steps, every_epochs)]


def test_epoch_interval_is_due_at_the_end_of_every_nth_epoch() -> None:
    assert _due_steps(3, 0, 1, 9) == [3, 6, 9]
    assert _due_steps(3, 0, 2, 12) == [6, 12]


def test_step_and_epoch_intervals_combine() -> None:
    assert _due_steps(5, 4, 1, 12) == [4, 5, 8, 10, 12]


def test_zero_turns_an_interval_off() -> None:
    assert _due_steps(3, 0, 0, 9) == []
    assert _due_steps(3, 2, 0, 6) == [2, 4, 6]
    assert not due(0, 3, 1, 1)  # nothing is due before the first step


def test_simpletuner_interval_names_read_from_a_toml_config(tmp_path: Path) -> None:
    path = tmp_path / "st.toml"
    path.write_text(
        "checkpoint_step_interval = 250\nvalidation_step_interval = 50\n"
        "checkpoint_epoch_interval = 1\nvalidation_epoch_interval = 2\n"
    )
    assert load_config_file(path) == {
        "checkpointing_steps": 250,
        "validation_steps": 50,
        "checkpoint_epoch_interval": 1,
        "validation_epoch_interval": 2,
    }
    path.write_text("checkpoint_step_interval = 250\ncheckpointing_steps = 100\n")
    with pytest.raises(ConfigFileError, match="another name of 'checkpointing_steps'"):
        load_config_file(path)
