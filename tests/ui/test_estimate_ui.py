"""The run bar's live estimate: shown while editing, compared with GPU memory when there is
a GPU, with the two biggest savings named when the config will not fit."""

from __future__ import annotations

from nicegui.testing import User

from app.services.estimate_view import describe
from app.services.hardware import GpuInfo
from registry.validation import validate_config
from tests.ui.test_trainer_page import choose, element


def _gb(text: str) -> float:
    return float(text.split("GB")[0].strip("~ "))


async def test_the_estimate_follows_edits(trainer_user: User) -> None:
    await trainer_user.should_see(marker="run-estimate")
    demo = _gb(element(trainer_user, "run-estimate").text)
    choose(trainer_user, "field-model_family", "sdxl")
    sdxl = _gb(element(trainer_user, "run-estimate").text)
    assert sdxl > 5 * demo and sdxl > 5  # a 2.6B UNet at 1024 px, fp32
    await trainer_user.should_not_see(marker="fit-warning")  # no GPU here: nothing to compare


def test_a_config_too_big_for_the_gpu_names_the_two_biggest_savings() -> None:
    values = validate_config({"model_family": "sdxl", "pretrained_model_name_or_path": "/m"})
    small = [GpuInfo(index=0, name="NVIDIA GeForce RTX 3060", memory_total_mb=8 * 1024)]
    view = describe(values.values, small)
    assert view.fits is False
    assert "Biggest savings: use bf16 mixed precision" in view.warning
    assert view.warning.count("GB)") == 2
    big = [GpuInfo(index=0, name="NVIDIA H200", memory_total_mb=141 * 1024)]
    assert describe(values.values, big).fits is True
    assert describe(values.values, []).fits is None
    # Only the selected GPUs count: GPU 1 is the small one.
    both = [big[0], GpuInfo(index=1, name="small", memory_total_mb=8 * 1024)]
    assert describe({**values.values, "gpu_ids": "1"}, both).fits is False
    assert describe({**values.values, "gpu_ids": "0"}, both).fits is True
