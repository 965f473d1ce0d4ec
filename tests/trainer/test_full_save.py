"""A full fine-tune's saved folder loads with a bare from_pretrained, generates, and carries the
base model's own scheduler; a v-prediction model (SD 2.x) trains and renders validation images."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.trainer.conftest import fast, losses, read_events, run_in_process

pytestmark = pytest.mark.slow


def _with_euler_scheduler(base: Path, folder: Path) -> Path:
    """A copy of `base` whose own scheduler is Euler (as SDXL base ships), not DDIM."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    shutil.copytree(base, folder)
    config = DDIMScheduler.load_config(base, subfolder="scheduler")
    EulerDiscreteScheduler.from_config(config).save_config(folder / "scheduler")
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "EulerDiscreteScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("family", ["sd1x", "sdxl"])
def test_fp16_full_save_loads_plainly_generates_and_keeps_the_base_scheduler(
    family: str,
    tmp_path: Path,
    sd1x_pipeline: Path,
    sdxl_pipeline: Path,
    image_folder: Path,
) -> None:
    from diffusers import DiffusionPipeline

    base = sd1x_pipeline if family == "sd1x" else sdxl_pipeline
    if family == "sdxl":
        base = _with_euler_scheduler(base, tmp_path / "base")
    out = tmp_path / "run"
    raw = fast(
        out,
        model_family=family,
        pretrained_model_name_or_path=str(base),
        datasets=[{"path": str(image_folder), "bucketing": False}],
        model_type="full",
        train_text_encoder=True,
        optimizer="sgd",
        max_train_steps=2,
    )
    code, cfg = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    assert cfg["save_precision"] == "fp16"  # the default

    pipe = DiffusionPipeline.from_pretrained(out / "weights")
    image = pipe("a red circle", num_inference_steps=2, height=64, width=64).images[0]
    assert image.size == (64, 64)
    own = DiffusionPipeline.from_pretrained(base).scheduler
    assert type(pipe.scheduler) is type(own)
    assert dict(pipe.scheduler.config) == dict(own.config)


def test_v_prediction_model_trains_and_renders_validation_images(
    tmp_path: Path, image_folder: Path
) -> None:
    from diffusers import StableDiffusionPipeline

    from trainer.demo_model import write_tiny_pipeline

    base = write_tiny_pipeline(tmp_path / "tiny-sd2x", "sd2x")
    out = tmp_path / "run"
    raw = fast(
        out,
        model_family="sd2x",
        pretrained_model_name_or_path=str(base),
        datasets=[{"path": str(image_folder), "bucketing": False}],
        max_train_steps=2,
        validation_steps=2,
        save_precision="fp32",
    )
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    assert all(math.isfinite(v) for v in losses(out).values()) and sorted(losses(out)) == [1, 2]
    shown = [e for e in read_events(out) if e["type"] == "validation"]
    assert [e["data"]["step"] for e in shown] == [2]
    for img in shown[0]["data"]["images"]:
        pixels = np.asarray(Image.open(img["path"]).convert("RGB"), dtype=np.float32)
        assert pixels.shape == (64, 64, 3) and pixels.std() > 0  # a NaN render is flat black
    pipe = StableDiffusionPipeline.from_pretrained(base)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    pipe.load_lora_weights(str(out / "weights"))
