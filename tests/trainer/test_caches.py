"""Latent and text-embedding caches: full before step 1, the only input of training after it,
and invisible in the result (a cached run trains like an uncached one)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import fast, losses, read_events, run_in_process

pytestmark = pytest.mark.slow

AUGMENTED = {
    "random_flip": True,
    "bucketing": False,
    "crop": "random",
    "shuffle_caption": True,
    "caption_dropout_probability": 0.3,
}


def _sd1x(
    out: Path, pipeline: Path, folder: Path, entry: dict[str, Any] | None = None, **overrides: Any
) -> dict[str, Any]:
    raw = fast(
        out,
        model_family="sd1x",
        pretrained_model_name_or_path=str(pipeline),
        train_batch_size=2,
        **overrides,
    )
    raw["datasets"] = [{"path": str(folder)} | (entry or {})]
    return raw


def _running_ts(out: Path) -> float:
    return next(
        e["ts"]
        for e in read_events(out)
        if e["type"] == "lifecycle" and e["data"]["state"] == "running"
    )


def _log_lines(out: Path) -> list[str]:
    return [e["data"]["message"] for e in read_events(out) if e["type"] == "log"]


def test_caches_hold_one_entry_per_image_and_caption_before_step_one(
    tmp_path: Path, sd1x_pipeline: Path, image_folder: Path
) -> None:
    # No random augmentation: exactly one latent per image and one embedding per caption.
    out = tmp_path / "run"
    raw = _sd1x(out, sd1x_pipeline, image_folder, cache_latents=True, cache_text_embeddings=True)
    raw["max_train_steps"] = 1
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    images = 6  # image_folder: six readable images with distinct captions, one broken file
    assert len(list((out / "cache" / "latents").glob("*.safetensors"))) == images
    assert len(list((out / "cache" / "text").glob("*.safetensors"))) == images
    lines = _log_lines(out)
    assert f"caching latents {images}/{images}" in lines
    assert f"caching text embeddings {images}/{images}" in lines
    # Progress comes before training starts.
    events = read_events(out)
    done = next(e["seq"] for e in events if e["data"].get("message", "").startswith("caches"))
    running = next(e["seq"] for e in events if e["data"].get("state") == "running")
    assert done < running


def test_after_the_fill_training_opens_no_image_and_runs_no_encoder(
    tmp_path: Path, sd1x_pipeline: Path, image_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With random flips, crops, tag shuffling and caption dropout over several epochs, the
    fill must already hold every variant the steps use: after it, no image file is opened
    and neither the VAE encoder nor the text encoder runs."""
    from diffusers import AutoencoderKL
    from PIL import Image
    from transformers import CLIPTextModel

    calls: list[tuple[str, float]] = []
    real_open, real_encode, real_te = Image.open, AutoencoderKL.encode, CLIPTextModel.forward

    def spy_open(fp: Any, *a: Any, **k: Any) -> Any:
        if Path(str(fp)).parent == image_folder:
            calls.append(("open", time.time()))
        return real_open(fp, *a, **k)

    def spy_encode(self: Any, *a: Any, **k: Any) -> Any:
        calls.append(("vae", time.time()))
        return real_encode(self, *a, **k)

    def spy_te(self: Any, *a: Any, **k: Any) -> Any:
        calls.append(("te", time.time()))
        return real_te(self, *a, **k)

    monkeypatch.setattr(Image, "open", spy_open)
    monkeypatch.setattr(AutoencoderKL, "encode", spy_encode)
    monkeypatch.setattr(CLIPTextModel, "forward", spy_te)
    out = tmp_path / "run"
    raw = _sd1x(
        out,
        sd1x_pipeline,
        image_folder,
        cache_latents=True,
        cache_text_embeddings=True,
        entry=AUGMENTED,
    )
    raw["max_train_steps"] = 9  # three epochs of three batches
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    running = _running_ts(out)
    before = {kind for kind, ts in calls if ts < running}
    assert before == {"open", "vae", "te"}  # the spies see the fill
    assert [kind for kind, ts in calls if ts >= running] == []
    assert sorted(losses(out)) == list(range(1, 10))
    # Flips and crops made more latent variants than images.
    assert len(list((out / "cache" / "latents").glob("*.safetensors"))) > 6


def test_a_cached_run_trains_like_an_uncached_one(
    tmp_path: Path, sd1x_pipeline: Path, image_folder: Path
) -> None:
    """Same seed, random augmentation: the per-step losses match, so caching changes neither
    the data nor the noise (latents are sampled from the cached distribution each step)."""
    runs = {}
    for cached in (False, True):
        out = tmp_path / f"cached-{cached}"
        raw = _sd1x(
            out,
            sd1x_pipeline,
            image_folder,
            cache_latents=cached,
            cache_text_embeddings=cached,
            entry=AUGMENTED,
        )
        raw["max_train_steps"] = 6
        code, _ = run_in_process(raw)
        assert code == 0, read_events(out)[-1]
        runs[cached] = losses(out)
    assert sorted(runs[True]) == list(range(1, 7))
    # Not bit-exact by contract: the fill encodes in other batches than the steps, which
    # may change the last bits of a convolution; a different noise draw changes far more.
    assert runs[True] == pytest.approx(runs[False], rel=1e-5, abs=1e-7)


def test_a_second_run_reuses_the_cache(
    tmp_path: Path, sd1x_pipeline: Path, image_folder: Path
) -> None:
    out = tmp_path / "run"
    raw = _sd1x(out, sd1x_pipeline, image_folder, cache_latents=True, cache_text_embeddings=True)
    raw["max_train_steps"] = 1
    assert run_in_process(raw)[0] == 0
    first = _log_lines(out)
    assert "caching latents 6/6" in first
    (out / "events.jsonl").unlink()
    assert run_in_process(raw)[0] == 0
    second = _log_lines(out)
    assert "caching latents 0/0" in second and "caching text embeddings 0/0" in second


@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(),
    reason="needs a GPU: on the CPU there is no accelerator for the encoders to leave",
)
def test_cached_encoders_wait_on_the_cpu_and_come_back_for_validation(
    tmp_path: Path, sd1x_pipeline: Path, image_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.families.sd as tm

    seen: list[tuple[str, str, str]] = []
    real_load = tm.load_models

    def load(*a: Any, **k: Any) -> Any:
        models = real_load(*a, **k)

        def record(module: Any, args: Any) -> None:
            seen.append(
                (
                    next(module.parameters()).device.type,
                    next(models.vae.parameters()).device.type,
                    next(models.text_encoders[0].parameters()).device.type,
                )
            )

        models.unet.register_forward_pre_hook(record)
        return models

    monkeypatch.setattr(tm, "load_models", load)
    out = tmp_path / "run"
    raw = _sd1x(
        out,
        sd1x_pipeline,
        image_folder,
        cache_latents=True,
        cache_text_embeddings=True,
        validation_steps=2,
    )
    raw["max_train_steps"] = 5
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    # Training steps: UNet on the GPU, VAE and text encoder on the CPU; validation's UNet
    # calls see all three on the GPU; steps after validation see them back on the CPU.
    assert ("cuda", "cpu", "cpu") in seen and ("cuda", "cuda", "cuda") in seen
    assert seen[-1] == ("cuda", "cpu", "cpu")
    assert set(seen) == {("cuda", "cpu", "cpu"), ("cuda", "cuda", "cuda")}
    assert (out / "validation" / "step-000004" / "0.png").is_file()
