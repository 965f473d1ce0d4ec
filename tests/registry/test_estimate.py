"""The memory/time estimate's arithmetic, checked against cases worked out by hand."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from registry import estimate as est
from registry.validation import validate_config

GB = 1024**3


def config(**raw: object) -> dict:
    raw.setdefault("pretrained_model_name_or_path", "/models/x")
    result = validate_config(raw)
    assert not [e for e in result.errors if e.kind == "value"], result.errors
    return result.values


def test_sd15_lora_fp16_by_hand() -> None:
    cfg = config(model_family="sd1x", mixed_precision="fp16", resolution=512, lora_rank=4)
    e = est.estimate(cfg)
    lora = 4 * 199_296  # rank * sum(in + out) of the attention projections
    assert e.parts["weights"] == pytest.approx(859.5e6 * 2)  # frozen UNet in fp16
    assert e.parts["text encoders"] == pytest.approx(123.1e6 * 2)
    assert e.parts["vae"] == pytest.approx(83.7e6 * 2)
    assert e.parts["trained"] == e.parts["gradients"] == pytest.approx(lora * 4)
    assert e.parts["optimizer"] == pytest.approx(lora * 8)  # AdamW: two fp32 states
    assert e.parts["activations"] == pytest.approx(18_000 * 512 * 512 * 0.5)
    total = (859.5e6 + 123.1e6 + 83.7e6) * 2 + lora * 16 + 18_000 * 512 * 512 * 0.5
    assert e.peak_bytes == pytest.approx(total * 1.1 + 0.5 * GB)
    # 2 passes (LoRA) * 400 GFLOPs / (165 TFLOPS * 0.35)
    assert e.step_s == pytest.approx(2 * 400e9 / (165e12 * 0.35))


def test_full_finetune_with_ema_and_8bit_adam_by_hand() -> None:
    cfg = config(
        model_family="sd1x",
        model_type="full",
        use_ema=True,
        optimizer="adamw8bit",
        gradient_checkpointing=True,
        cache_latents=True,
        cache_text_embeddings=True,
    )
    e = est.estimate(cfg)
    p = 859.5e6
    assert e.parts["weights"] == pytest.approx(p * 4)  # trained in fp32
    assert e.parts["trained"] == 0  # the weights are the trained copy
    assert e.parts["gradients"] == e.parts["ema"] == pytest.approx(p * 4)
    assert e.parts["optimizer"] == pytest.approx(p * 2)
    assert e.parts["text encoders"] == e.parts["vae"] == 0  # cached, off the device
    assert e.parts["activations"] == pytest.approx(18_000 * 512 * 512 * 1.0 * 0.25)
    assert e.step_s == pytest.approx(4 * 400e9 / (165e12 * 0.35))  # 3 passes + 1 recompute


def test_flux_transformer_flops_and_nf4_weights() -> None:
    cfg = config(
        model_family="flux",
        mixed_precision="bf16",
        base_model_precision="nf4",
        resolution=1024,
        train_batch_size=2,
    )
    e = est.estimate(cfg, gpu_names=["NVIDIA H100 80GB HBM3"])
    assert e.parts["weights"] == pytest.approx(11.9e9 * 0.5625)
    tokens = (1024 // 16) ** 2 + 512
    assert e.step_s == pytest.approx(2 * (2 * 11.9e9 * tokens) * 2 / (990e12 * 0.35))
    assert e.parts["activations"] == pytest.approx(2 * 16_000 * 1024 * 1024 * 0.5)


def test_the_biggest_savings_are_named_in_order() -> None:
    cfg = config(model_family="sdxl", resolution=1024)  # fp32, no checkpointing, AdamW
    (first, a), (_, b) = est.biggest_savings(cfg)
    assert a >= b > 0
    worse = est.estimate(cfg).peak_bytes
    assert first == "use bf16 mixed precision"  # halves weights, encoders and activations
    assert est.estimate({**cfg, "mixed_precision": "bf16"}).peak_bytes == pytest.approx(worse - a)


def test_parameter_counts_come_from_safetensors_headers(tmp_path: Path) -> None:
    def write(path: Path, shapes: dict[str, list[int]]) -> None:
        path.parent.mkdir(parents=True)
        header = json.dumps(
            {k: {"dtype": "F16", "shape": s, "data_offsets": [0, 0]} for k, s in shapes.items()}
        ).encode()
        path.write_bytes(struct.pack("<Q", len(header)) + header)

    write(
        tmp_path / "unet" / "diffusion_pytorch_model.safetensors",
        {
            "a.attn1.to_q.weight": [320, 320],
            "a.attn2.to_k.weight": [320, 768],
            "a.conv.weight": [320, 4, 3, 3],
        },
    )
    write(tmp_path / "text_encoder" / "model.safetensors", {"emb": [1000, 64]})
    counts = est.count_parameters(tmp_path)
    assert counts["denoiser"] == 320 * 320 + 320 * 768 + 320 * 4 * 9
    assert counts["text"] == 64_000
    assert counts["lora_per_rank"] == (320 + 320) + (768 + 320)
    cfg = config(model_family="sd1x", lora_rank=8)
    e = est.estimate(cfg, counts)
    assert e.parts["gradients"] == pytest.approx(8 * counts["lora_per_rank"] * 4)
    assert e.params["vae"] == 83.7e6  # not in the folder: the published figure
    assert est.count_parameters(tmp_path / "missing") == {}


def test_activations_follow_the_width_of_a_smaller_model_and_cpu_has_no_cuda_context() -> None:
    cfg = config(model_family="sd1x", resolution=512)
    full_size = est.estimate(cfg).parts["activations"]
    quarter = {"denoiser": 859.5e6 / 4, "text": 123.1e6, "vae": 83.7e6, "lora_per_rank": 1}
    small = est.estimate(cfg, quarter)
    assert small.parts["activations"] == pytest.approx(full_size / 2)  # sqrt(1/4)
    on_cpu = est.estimate(cfg, quarter, device="cpu")
    assert on_cpu.peak_bytes - small.peak_bytes == pytest.approx(
        est.CPU_RUNTIME_BYTES - est.CONTEXT_BYTES
    )


def test_a_single_file_checkpoint_is_counted_by_key_prefix(tmp_path: Path) -> None:
    header = json.dumps(
        {
            "model.diffusion_model.x.attn1.to_q.weight": {
                "dtype": "F16",
                "shape": [320, 320],
                "data_offsets": [0, 0],
            },
            "model.diffusion_model.conv.weight": {
                "dtype": "F16",
                "shape": [8, 4, 3, 3],
                "data_offsets": [0, 0],
            },
            "first_stage_model.decoder.w": {
                "dtype": "F16",
                "shape": [10, 10],
                "data_offsets": [0, 0],
            },
            "cond_stage_model.emb": {"dtype": "F16", "shape": [5, 6], "data_offsets": [0, 0]},
        }
    ).encode()
    file = tmp_path / "model.safetensors"
    file.write_bytes(struct.pack("<Q", len(header)) + header)
    counts = est.count_parameters(file)
    assert counts == {
        "denoiser": 320 * 320 + 8 * 4 * 9,
        "vae": 100,
        "text": 30,
        "lora_per_rank": 640,
    }
