"""One suite over every model family, through the real trainer (`trainer.loop.train`) on the
tiny pipelines of `python -m trainer.tiny`: a LoRA run completes with finite losses, renders
validation images with the family's pipeline and saves a LoRA that diffusers'
load_lora_weights reads and that changes the output; stop + resume gives the losses of an
uninterrupted run; a full fine-tune saves a folder a bare from_pretrained loads; and, marked
`learning`, the loss falls over 100 steps on an image the model can memorise."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tests.trainer.conftest import fast, losses, read_events, run_in_process
from trainer.tiny import MODEL_FAMILY, TINY_FAMILIES, write_tiny

pytestmark = pytest.mark.slow

FAMILIES = list(TINY_FAMILIES)  # demo, sd1x, sd2x (v-prediction), sdxl, flux-dev/schnell, sd3
CAPTION = "a red circle on a blue background"


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("family-runs")
    return {f: write_tiny(f, root / f) for f in FAMILIES if f != "demo"}


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Four 64 px images (one 128x64, for a second aspect) with captions."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i, size in enumerate([(64, 64), (64, 64), (64, 64), (128, 64)]):
        img = Image.new("RGB", size, (20 + 50 * i, 40, 200 - 40 * i))
        ImageDraw.Draw(img).ellipse((8, 8, 40, 40), fill=(220, 30, 30))
        img.save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text(f"shape {i}, a red circle")
    return folder


def raw_config(
    tiny: str, out: Path, tiny_models: dict[str, Path], data: Path | None, **extra: Any
) -> dict[str, Any]:
    raw = fast(out, model_family=MODEL_FAMILY[tiny], t5_max_length=16, **extra)
    if tiny != "demo":
        raw["pretrained_model_name_or_path"] = str(tiny_models[tiny])
    if data is not None:
        raw["datasets"] = [{"path": str(data)}]
    return raw


def base_path(tiny: str, tiny_models: dict[str, Path]) -> Path:
    if tiny == "demo":
        from trainer.demo_model import demo_model_path

        return demo_model_path()
    return tiny_models[tiny]


def render(pipe: Any, tiny: str) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    extra = {"max_sequence_length": 16} if MODEL_FAMILY[tiny] in ("flux", "sd3") else {}
    out = pipe(
        CAPTION,
        num_inference_steps=2,
        height=64,
        width=64,
        guidance_scale=2.0,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
        **extra,
    )
    return out.images[0]


@pytest.mark.parametrize("tiny", FAMILIES)
def test_lora_run_validates_and_saves_a_lora_diffusers_loads(
    tiny: str, tiny_models: dict, images: Path, tmp_path: Path, demo_model: Path
) -> None:
    from diffusers import DiffusionPipeline

    out = tmp_path / "run"
    raw = raw_config(
        tiny,
        out,
        tiny_models,
        None if tiny == "demo" else images,
        max_train_steps=3,
        train_batch_size=2,
        learning_rate=1e-2,
        validation_steps=3,
        validation_prompt=CAPTION,
        cache_latents=True,
        cache_text_embeddings=True,
        eval_steps=3,
    )
    if tiny != "demo":  # one image held out: the family's eval loss, with the caches on
        raw["datasets"][0]["eval_split"] = 0.25
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    by_step = losses(out)
    assert sorted(by_step) == [1, 2, 3]
    assert all(math.isfinite(v) for v in by_step.values())
    evals = {e["data"]["step"]: e["data"]["loss"] for e in read_events(out) if e["type"] == "eval"}
    if tiny != "demo":
        assert sorted(evals) == [0, 3] and all(math.isfinite(v) for v in evals.values())
    assert (out / "validation" / "step-000003" / "0.png").is_file()
    record = json.loads((out / "precision.json").read_text())
    assert record["parts"]["vae"] == "float32" and record["trained_weights"] == "float32"

    pipe = DiffusionPipeline.from_pretrained(str(base_path(tiny, tiny_models)))
    before = render(pipe, tiny)
    pipe.load_lora_weights(str(out / "weights"))
    assert np.abs(render(pipe, tiny) - before).max() > 1e-3, "the saved LoRA changes nothing"


@pytest.mark.parametrize("tiny", FAMILIES)
def test_resume_gives_the_losses_of_an_uninterrupted_run(
    tiny: str, tiny_models: dict, images: Path, tmp_path: Path, demo_model: Path
) -> None:
    common = {"max_train_steps": 4, "train_batch_size": 2, "lr_scheduler": "cosine"}
    data = None if tiny == "demo" else images
    full = tmp_path / "full"
    code, _ = run_in_process(
        raw_config(tiny, full, tiny_models, data, checkpointing_steps=2, **common)
    )
    assert code == 0, read_events(full)[-1]
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "checkpoint-2", resumed / "checkpoints" / "checkpoint-2")
    raw = raw_config(tiny, resumed, tiny_models, data, resume_from_checkpoint="latest", **common)
    assert run_in_process(raw)[0] == 0, read_events(resumed)[-1]
    expected = {s: v for s, v in losses(full).items() if s > 2}
    assert losses(resumed) == expected


@pytest.mark.parametrize("tiny", FAMILIES)
def test_full_fine_tune_saves_a_folder_from_pretrained_loads(
    tiny: str, tiny_models: dict, images: Path, tmp_path: Path, demo_model: Path
) -> None:
    from diffusers import DiffusionPipeline

    out = tmp_path / "run"
    raw = raw_config(
        tiny,
        out,
        tiny_models,
        None if tiny == "demo" else images,
        model_type="full",
        optimizer="sgd",
        max_train_steps=2,
        save_precision="fp32",
    )
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    pipe = DiffusionPipeline.from_pretrained(str(out / "weights"))
    base = DiffusionPipeline.from_pretrained(str(base_path(tiny, tiny_models)))
    assert type(pipe) is type(base)
    assert render(pipe, tiny).shape == (64, 64, 3)


def _one_image(folder: Path) -> Path:
    folder.mkdir()
    img = Image.new("RGB", (64, 64), (20, 40, 200))
    ImageDraw.Draw(img).ellipse((12, 12, 52, 52), fill=(220, 30, 30))
    img.save(folder / "circle.png")
    (folder / "circle.txt").write_text(CAPTION)
    return folder


@pytest.mark.learning
@pytest.mark.parametrize("tiny", FAMILIES)
def test_loss_falls_on_an_image_the_model_can_memorise(
    tiny: str, tiny_models: dict, tmp_path: Path, demo_model: Path
) -> None:
    """A full fine-tune (the tiny denoisers are random: their LoRAs have little to build on),
    one image seen 4 times per batch so each step averages 4 noise draws. Measured ratio of
    the last 10 steps' mean loss to the first 10's, seeds 0-2: demo 0.31-0.40, sd1x 0.11-0.12,
    sd2x 0.23-0.51, sdxl 0.11-0.12, flux-dev 0.08-0.10, flux-schnell 0.10-0.12, sd3 0.28-0.30;
    a model that does not learn stays near 1."""
    steps = 100
    out = tmp_path / "run"
    raw = raw_config(
        tiny,
        out,
        tiny_models,
        None,
        model_type="full",
        max_train_steps=steps,
        train_batch_size=4,
        learning_rate=1e-3,
        lr_scheduler="constant",
        num_cpu_threads_per_process=1,
    )
    raw["datasets"] = [{"path": str(_one_image(tmp_path / "data")), "repeats": 4}]
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    values = [losses(out)[s] for s in range(1, steps + 1)]
    assert mean(values[-10:]) < 0.7 * mean(values[:10])


FLOW_CASES: dict[str, dict[str, Any]] = {
    "flux-dev": {
        "validation_steps": 2,
        "checkpointing_steps": 2,
        "train_text_encoder": True,
        "weighting_scheme": "mode",
        "flow_shift": 3.0,
        "flux_guidance_value": 3.5,
        "base_model_precision": "int8",
    },
    "sd3": {
        "validation_steps": 2,
        "sd3_drop_t5": True,
        "loss_type": "huber",
        "huber_schedule": "snr",
        "cache_text_embeddings": True,
        "validation_negative_prompt": "blurry",
    },
}


@pytest.mark.parametrize("tiny", sorted(FLOW_CASES))
def test_every_active_flow_matching_field_is_read(
    tiny: str, tiny_models: dict, images: Path, tmp_path: Path
) -> None:
    """As tests/trainer/test_fields_read.py, for the flow-matching families' fields."""
    if FLOW_CASES[tiny].get("base_model_precision") == "int8":
        pytest.importorskip("torchao")
    from registry.field import Scope
    from tests.trainer.test_fields_read import _active

    out = tmp_path / "run"
    code, cfg = run_in_process(raw_config(tiny, out, tiny_models, images, **FLOW_CASES[tiny]))
    assert code == 0, read_events(out)[-1]
    unread = _active(cfg.plain(), Scope.CONFIG) - cfg.read - {"datasets"}
    assert not unread, f"active fields never read by the trainer: {sorted(unread)}"
    record = json.loads((out / "precision.json").read_text())
    if FLOW_CASES[tiny].get("base_model_precision") == "int8":
        assert "Int8Tensor" in record["parts"]["transformer"]
