"""How fast the trainer page shows what a chosen model file is (goal: < 300 ms).

The file is a full-size SDXL checkpoint in the original layout: every tensor name and shape of
the real SDXL base model (UNet, VAE, both text encoders: built on torch's meta device from the
real configs, so no weights exist), fp16, 6.9 GB as a sparse file (no disk used). Timed:
  facts      registry.model_files via the UI's model_facts_text (header read + detection)
  page       in NiceGUI's simulated browser: setting the base-model field to the file until
             the facts label shows the detected family (what a person waits for)
Run: .venv/bin/python bench/model_file.py  (prints figures, writes bench/results/model_file.json)
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results" / "model_file.json"
SDXL_UNET = {
    "sample_size": 128,
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
SDXL_VAE = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "latent_channels": 4,
    "layers_per_block": 2,
    "sample_size": 1024,
}


def sdxl_shapes() -> dict[str, list[int]]:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from trainer.original_layout import (
        UNET,
        VAE,
        clip_to_original,
        open_clip_to_original,
        unet_to_original,
        vae_to_original,
    )

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET)
        vae = AutoencoderKL(**SDXL_VAE)
        te1 = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
            )
        )
        te2 = CLIPTextModelWithProjection(
            CLIPTextConfig(
                hidden_size=1280,
                intermediate_size=5120,
                num_hidden_layers=32,
                num_attention_heads=20,
                projection_dim=1280,
            )
        )
    out: dict[str, list[int]] = {}
    for k, v in unet_to_original(unet.state_dict(), unet.config).items():
        out[UNET + k] = list(v.shape)
    for k, v in vae_to_original(vae.state_dict(), vae.config).items():
        out[VAE + k] = list(v.shape)
    for k, v in clip_to_original(te1.state_dict()).items():
        out["conditioner.embedders.0.transformer." + k] = list(v.shape)
    for k, v in open_clip_to_original(te2.state_dict()).items():
        out["conditioner.embedders.1.model." + k] = list(v.shape)
    return out


def write_sparse(path: Path, shapes: dict[str, list[int]]) -> int:
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)  # sparse: the weights take no disk
    return len(raw)


def spread(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p90_ms": round(ms[int(len(ms) * 0.9) - 1], 2),
        "min_ms": round(ms[0], 2),
        "max_ms": round(ms[-1], 2),
        "n": len(ms),
    }


async def page_times(path: Path, repeats: int) -> list[float]:
    from nicegui.testing.user_simulation import user_simulation

    from app.server import configure
    from app.services.container import build_services

    times = []
    async with user_simulation() as user:
        configure(build_services())
        await user.open("/")
        select = next(iter(user.find(marker="field-model_family").elements))
        select.value = "sdxl"
        await user.should_see(marker="row-pretrained_model_name_or_path")
        box = next(iter(user.find(marker="field-pretrained_model_name_or_path").elements))
        for _ in range(repeats):
            box.value = ""
            start = time.perf_counter()
            box.value = str(path)
            await user.should_see("Detected: Stable Diffusion XL", retries=200)
            times.append(time.perf_counter() - start)
    return times


def main() -> int:
    from app.pages.model_file_picker import model_facts_text

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TUNERDECK_HOME", str(Path(tmp) / "home"))
        os.environ.setdefault("TUNERDECK_WEB_UI_CONFIG", str(Path(tmp) / "webui.json"))
        path = Path(tmp) / "sdxl-base.safetensors"
        shapes = sdxl_shapes()
        header_bytes = write_sparse(path, shapes)
        text = model_facts_text(str(path))
        assert "Stable Diffusion XL" in text, text
        facts = []
        for _ in range(50):
            start = time.perf_counter()
            model_facts_text(str(path))
            facts.append(time.perf_counter() - start)
        page = asyncio.run(page_times(path, 20))
        size = path.stat().st_size
    result = {
        "goal_ms": 300,
        "file": {"tensors": len(shapes), "header_bytes": header_bytes, "size_bytes": size},
        "facts": spread(facts),
        "page": spread(page),
        "shown": text,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
    }
    print(
        f"SDXL-shaped file: {len(shapes)} tensors, header {header_bytes / 1024:.0f} KB, "
        f"{size / 2**30:.1f} GiB (sparse)"
    )
    for name in ("facts", "page"):
        s = result[name]
        print(
            f"{name:6s} median {s['median_ms']} ms  p90 {s['p90_ms']}  min {s['min_ms']}  "
            f"max {s['max_ms']}  (n={s['n']}; goal < 300 ms)"
        )
    print("shown:", text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
