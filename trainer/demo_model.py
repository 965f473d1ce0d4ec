"""Tiny Stable-Diffusion-shaped pipelines generated locally with a fixed seed.

`ensure_demo_model()` builds the demo model once and caches it under data_dir()/models; its
VAE is briefly fitted to the demo images (trainer.demo_vae_fit, ~15 s on 2 CPU cores) so that
validation images show colours and shapes. `write_tiny_pipeline()` writes tiny SD 1.x / SD 2.x /
SDXL diffusers folders (random weights) that tests load through the same code path a real
model takes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from trainer.tokenizer_files import write_clip_tokenizer_files
from tunerdeck_common.paths import DEMO_MODEL_VERSION, demo_model_path

DEMO_NATIVE_RESOLUTION = 64


def _tokenizer(folder: Path) -> Any:
    from transformers import CLIPTokenizer

    write_clip_tokenizer_files(folder)
    return CLIPTokenizer.from_pretrained(folder, model_max_length=77)


def _text_encoder(vocab_size: int, hidden: int, projection: int | None, seed: int) -> Any:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=projection or hidden,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(cfg)


def _vae(seed: int) -> Any:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    # Four blocks: the usual 8x spatial downsampling, with very few channels.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=DEMO_NATIVE_RESOLUTION,
    )


def _scheduler(prediction_type: str) -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def build_tiny_pipeline(family: str, folder_for_tokenizers: Path, seed: int = 0) -> Any:
    """A tiny pipeline of `family` (demo, sd1x, sd2x or sdxl); random weights but the demo VAE."""
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel

    tok = _tokenizer(folder_for_tokenizers / "tokenizer")
    vocab = len(tok)
    vae = _vae(seed + 1)
    if family == "sdxl":
        tok2 = _tokenizer(folder_for_tokenizers / "tokenizer_2")
        te1 = _text_encoder(vocab, 32, None, seed + 2)
        te2 = _text_encoder(vocab, 32, 32, seed + 3)
        torch.manual_seed(seed + 4)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=64,  # te1 hidden + te2 hidden
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 1),
            projection_class_embeddings_input_dim=8 * 6 + 32,
            norm_num_groups=32,
        )
        return StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=te1,
            text_encoder_2=te2,
            tokenizer=tok,
            tokenizer_2=tok2,
            unet=unet,
            scheduler=_scheduler("epsilon"),
        )
    demo = family == "demo"
    if demo:
        from trainer.demo_vae_fit import fit_demo_vae

        fit_demo_vae(vae, DEMO_NATIVE_RESOLUTION, seed + 5)
    te = _text_encoder(vocab, 32 if family != "demo" else 64, None, seed + 2)
    torch.manual_seed(seed + 4)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(64, 128) if demo else (32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64 if demo else 32,
        attention_head_dim=8,
        use_linear_projection=family == "sd2x",
        norm_num_groups=32,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=te,
        tokenizer=tok,
        unet=unet,
        scheduler=_scheduler("v_prediction" if family == "sd2x" else "epsilon"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def write_tiny_pipeline(path: Path, family: str, seed: int = 0) -> Path:
    """Save a tiny `family` pipeline as a diffusers folder at `path` (atomic: temp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        pipe = build_tiny_pipeline(family, tmp / "_tok", seed)
        pipe.save_pretrained(tmp / "pipe", safe_serialization=True)
        # Keep the project's own vocab.json/merges.txt next to what save_pretrained wrote.
        for name in ("tokenizer", "tokenizer_2"):
            if (tmp / "_tok" / name).exists():
                write_clip_tokenizer_files(tmp / "pipe" / name)
        (tmp / "pipe" / "tunerdeck.json").write_text(json.dumps({"family": family, "seed": seed}))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp / "pipe", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def ensure_demo_model() -> Path:
    """The demo model folder, generated (fixed seed, no download) on first use."""
    path = demo_model_path()
    if (path / "model_index.json").exists():
        return path
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    # One generator at a time: the server's warm-up (python -m trainer.demo_model) and a first
    # run may overlap; the second waits for the first and then finds the model ready.
    with FileLock(str(path.parent / f".demo-{DEMO_MODEL_VERSION}.lock")):
        if (path / "model_index.json").exists():
            return path
        return write_tiny_pipeline(path, "demo", seed=1234)


def _warm_up() -> int:
    """`python -m trainer.demo_model`: build the demo model and dataset ahead of a first run."""
    from trainer import quiet
    from tunerdeck_common.demo_dataset import ensure_demo_dataset

    quiet.install()
    ensure_demo_dataset()
    ensure_demo_model()
    return 0


if __name__ == "__main__":
    raise SystemExit(_warm_up())
