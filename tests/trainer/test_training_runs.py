"""Real (tiny) trainings on the CPU: demo LoRA and full, SD 1.x and SDXL LoRA, resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.trainer.conftest import fast, losses, read_events, run_in_process, states

pytestmark = pytest.mark.slow


def test_demo_lora_trains_validates_checkpoints_and_loads(tmp_path: Path, demo_model: Path) -> None:
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "run"
    code, _ = run_in_process(
        fast(
            out,
            max_train_steps=4,
            validation_steps=2,
            checkpointing_steps=2,
            checkpoints_total_limit=1,
        )
    )
    assert code == 0
    events = read_events(out)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert states(out) == ["starting", "running", "completed"]
    assert sorted(losses(out)) == [1, 2, 3, 4]
    val = [e for e in events if e["type"] == "validation"]
    assert [v["data"]["step"] for v in val] == [2, 4]
    assert all(Path(img["path"]).is_file() for v in val for img in v["data"]["images"])
    assert (out / "validation" / "step-000004" / "0.png").is_file()
    # Retention keeps the newest checkpoint only.
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-4"]
    assert (out / "config.toml").is_file()
    pipe = StableDiffusionPipeline.from_pretrained(demo_model)
    pipe.load_lora_weights(str(out / "weights"))  # diffusers reads our LoRA file
    assert any("lora" in name for name, _ in pipe.unet.named_parameters())


def test_demo_full_finetune_with_ema_writes_a_pipeline(tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "run"
    code, _ = run_in_process(
        fast(
            out,
            model_type="full",
            use_ema=True,
            ema_decay=0.9,
            optimizer="sgd",
            save_precision="fp32",
        )
    )
    assert code == 0, read_events(out)[-1]
    pipe = StableDiffusionPipeline.from_pretrained(out / "weights")
    image = pipe("a red circle", num_inference_steps=2, height=64, width=64).images[0]
    assert image.size == (64, 64)


def test_sd1x_lora_on_a_folder_with_a_broken_image(
    tmp_path: Path, sd1x_pipeline: Path, image_folder: Path
) -> None:
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "run"
    raw = fast(
        out,
        model_family="sd1x",
        pretrained_model_name_or_path=str(sd1x_pipeline),
        train_batch_size=2,
        cache_latents=True,
        cache_text_embeddings=True,
        snr_gamma=5.0,
        noise_offset=0.05,
        loss_type="huber",
        datasets=[{"path": str(image_folder), "random_flip": True, "caption_prefix": "zxq"}],
    )
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    warnings = [e["data"]["message"] for e in read_events(out) if e["type"] == "log"]
    assert any("broken.png" in m for m in warnings)
    assert any((out / "cache" / "latents").iterdir())
    pipe = StableDiffusionPipeline.from_pretrained(sd1x_pipeline)
    pipe.load_lora_weights(str(out / "weights"))


def test_sdxl_lora_with_text_encoders(
    tmp_path: Path, sdxl_pipeline: Path, image_folder: Path
) -> None:
    from diffusers import StableDiffusionXLPipeline

    out = tmp_path / "run"
    raw = fast(
        out,
        model_family="sdxl",
        pretrained_model_name_or_path=str(sdxl_pipeline),
        train_text_encoder=True,
        validation_steps=3,
        datasets=[{"path": str(image_folder), "bucketing": False, "crop": "random"}],
    )
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    assert (out / "validation" / "step-000003" / "0.png").is_file()
    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_pipeline)
    pipe.load_lora_weights(str(out / "weights"))
    assert any("lora" in n for n, _ in pipe.text_encoder_2.named_parameters())


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path: Path) -> None:
    # Batch 8 over 48 demo images: 6 steps per epoch, so the resumed part crosses an epoch.
    common = {
        "train_batch_size": 8,
        "max_train_steps": 9,
        "lr_scheduler": "cosine",
        "lr_warmup_steps": 2,
    }
    full = tmp_path / "full"
    assert run_in_process(fast(full, checkpointing_steps=4, **common))[0] == 0
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoints" / "checkpoint-4", resumed / "checkpoints" / "checkpoint-4")
    assert run_in_process(fast(resumed, resume_from_checkpoint="latest", **common))[0] == 0
    expected = {s: v for s, v in losses(full).items() if s > 4}
    assert losses(resumed) == expected


def test_missing_dataset_folder_fails_before_training(tmp_path: Path, sd1x_pipeline: Path) -> None:
    out = tmp_path / "run"
    raw = fast(
        out,
        model_family="sd1x",
        pretrained_model_name_or_path=str(sd1x_pipeline),
        datasets=[{"path": str(tmp_path / "nowhere")}],
    )
    code, _ = run_in_process(raw)
    assert code == 1
    events = read_events(out)
    assert states(out)[-1] == "failed"
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and "nowhere" in errors[0]["data"]["message"]
    assert not any(e["type"] == "progress" for e in events)


def test_tensorboard_gets_the_loss_and_learning_rate_of_every_step(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    code, _ = run_in_process(fast(out, max_train_steps=3, report_to="tensorboard"))
    assert code == 0, read_events(out)[-1]
    event_files = list((out / "logs").rglob("events.out.tfevents.*"))
    assert event_files, "no TensorBoard event file under the logging folder"
    board = EventAccumulator(str(event_files[0].parent))
    board.Reload()
    assert [s.step for s in board.Scalars("loss")] == [1, 2, 3]
    assert sorted(losses(out)) == [1, 2, 3]  # the page's events are still all there
    assert all(s.value > 0 for s in board.Scalars("lr"))
