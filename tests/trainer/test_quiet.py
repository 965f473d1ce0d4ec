"""The trainer's log filter drops known library noise and nothing else."""

from __future__ import annotations

import logging

import pytest

from trainer import quiet


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def collected() -> _Collect:
    handler = _Collect()
    names = ["diffusers.models.modeling_utils", "torchao", "transformers.utils.import_utils"]
    loggers = [logging.getLogger(n) for n in names]
    for lg in loggers:
        lg.addHandler(handler)
    quiet.install()
    quiet.install()  # idempotent
    yield handler
    for lg in loggers:
        lg.removeHandler(handler)
        lg.removeFilter(quiet._FILTER)


def test_noise_is_dropped_and_real_warnings_are_kept(collected: _Collect) -> None:
    cast = logging.getLogger("diffusers.models.modeling_utils")
    cast.warning(
        "There are modules in UNet2DConditionModel that should be kept in float32: []. "
        "Casting directly with `to()` can lead to inconsistent results"
    )
    cast.warning(
        "There are modules in AutoencoderKL that should be kept in float32: ['decoder']. "
        "Casting directly with `to()` can lead to inconsistent results"
    )
    logging.getLogger("torchao").warning("Failed to load /x/torchao/_C_mxfp8.so: nope")
    logging.getLogger("torchao").warning("Skipping import of cpp extensions")
    logging.getLogger("transformers.utils.import_utils").warning(
        "`CLIPImageProcessor` requires torchvision (not installed); falling back to `X`"
    )
    assert collected.messages == [
        "There are modules in AutoencoderKL that should be kept in float32: ['decoder']. "
        "Casting directly with `to()` can lead to inconsistent results",
        "Skipping import of cpp extensions",
    ]
    assert logging.getLogger("torchao").filters.count(quiet._FILTER) == 1


def test_a_pattern_only_applies_to_its_own_logger() -> None:
    assert quiet.is_noise("torchao", "Failed to load /a/b.so: x")
    assert not quiet.is_noise("trainer", "Failed to load /a/b.so: x")
