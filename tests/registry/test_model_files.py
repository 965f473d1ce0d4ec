"""Model files judged from their safetensors header alone (stdlib, no torch): the family from
the tensor names, the facts the UI shows, and one clear message for each kind of bad file,
refused by validation before a run starts."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from registry.model_files import ModelFileError, inspect_model_file
from registry.validation import validate_config

ROOT = Path(__file__).resolve().parents[2]

# A few tensor names of each layout, as the original checkpoints have them (small shapes:
# the files are zero-filled; only the UNet's cross-attention width is the real one).
UNET = {
    "model.diffusion_model.input_blocks.0.0.weight": [32, 4, 3, 3],
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [32, 768],
    "model.diffusion_model.out.2.weight": [4, 32, 3, 3],
}
LAYOUTS: dict[str, dict[str, list[int]]] = {
    "sd1x": UNET
    | {
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": [77, 8],
        "first_stage_model.encoder.conv_in.weight": [8, 3, 3, 3],
    },
    "sd2x": {
        "model.diffusion_model.input_blocks.0.0.weight": [32, 4, 3, 3],
        "cond_stage_model.model.token_embedding.weight": [16, 8],
    },
    "sdxl": {
        "model.diffusion_model.label_emb.0.0.weight": [32, 16],
        "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": [8],
        "conditioner.embedders.1.model.positional_embedding": [77, 8],
    },
}


def write_safetensors(
    path: Path,
    shapes: dict[str, list[int]],
    metadata: dict[str, str] | None = None,
    cut: int = 0,
) -> Path:
    """A valid safetensors file of zero-filled F16 tensors (`cut` bytes short at the end)."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * (offset - cut))
    return path


@pytest.mark.parametrize("family", sorted(LAYOUTS))
def test_the_family_is_read_from_the_tensor_names(tmp_path: Path, family: str) -> None:
    facts = inspect_model_file(write_safetensors(tmp_path / "m.safetensors", LAYOUTS[family]))
    assert facts.family == family


def test_the_facts_the_ui_shows(tmp_path: Path) -> None:
    file = write_safetensors(
        tmp_path / "m.safetensors", LAYOUTS["sd1x"], {"modelspec.prediction_type": "v"}
    )
    facts = inspect_model_file(file)
    assert facts.unet_parameters == 32 * 4 * 9 + 32 * 768 + 4 * 32 * 9
    assert facts.v_prediction is True and facts.dtype == "F16"
    summary = facts.summary()
    assert summary["Detected"] == "Stable Diffusion 1.x"
    assert summary["v-prediction"] == "yes"
    assert summary["Size"].endswith("KB") or summary["Size"].endswith("MB")
    plain = inspect_model_file(write_safetensors(tmp_path / "p.safetensors", LAYOUTS["sdxl"]))
    assert plain.v_prediction is None  # the file does not say: nothing is guessed


def test_a_unet_only_file_is_judged_by_its_cross_attention_width(tmp_path: Path) -> None:
    key = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    for width, family in ((768, "sd1x"), (1024, "sd2x")):
        file = write_safetensors(tmp_path / f"{width}.safetensors", {key: [32, width]})
        assert inspect_model_file(file).family == family


def _errors(tmp_path: Path, **values: Any) -> list[str]:
    raw = {"model_family": "sd1x", "datasets": [{"path": str(tmp_path)}], **values}
    return [f"{i.path}: {i.message}" for i in validate_config(raw).errors]


def test_bad_base_model_files_each_get_one_clear_message(tmp_path: Path) -> None:
    truncated = write_safetensors(tmp_path / "cut.safetensors", LAYOUTS["sd1x"], cut=100)
    text = tmp_path / "notes.safetensors"
    text.write_text("these are my notes, not a model\n" * 5)
    sdxl = write_safetensors(tmp_path / "xl.safetensors", LAYOUTS["sdxl"])
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x02}q\x00.")
    lora = write_safetensors(
        tmp_path / "lora.safetensors", {"lora_unet_x.lora_down.weight": [4, 8]}
    )
    cases = {
        truncated: "is truncated",
        text: "not a safetensors file",
        sdxl: "is a Stable Diffusion XL checkpoint (read from its tensor names): set "
        "model_family to sdxl",
        ckpt: "pickle checkpoint",
        lora: "is a LoRA, not a base model",
    }
    for file, expected in cases.items():
        [message] = _errors(tmp_path, pretrained_model_name_or_path=str(file))
        assert message.startswith("pretrained_model_name_or_path: ") and expected in message
    ok = write_safetensors(tmp_path / "ok.safetensors", LAYOUTS["sd1x"])
    assert _errors(tmp_path, pretrained_model_name_or_path=str(ok)) == []


def test_a_lora_of_another_rank_is_refused_as_init_lora(tmp_path: Path) -> None:
    lora = write_safetensors(
        tmp_path / "old.safetensors",
        {
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": [8, 32],
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": [32, 8],
        },
    )
    [message] = _errors(tmp_path, model_family="demo", init_lora=str(lora), lora_rank=4)
    assert "has rank 8 but lora_rank is 4: set lora_rank to 8" in message
    assert _errors(tmp_path, model_family="demo", init_lora=str(lora), lora_rank=8) == []
    base = write_safetensors(tmp_path / "base.safetensors", LAYOUTS["sd1x"])
    [message] = _errors(tmp_path, model_family="demo", init_lora=str(base))
    assert "is not a LoRA" in message


def test_the_trainer_refuses_a_bad_file_before_writing_anything(tmp_path: Path) -> None:
    """python -m trainer validates first: a wrong-family file stops it with the message and
    no run folder appears."""
    sdxl = write_safetensors(tmp_path / "xl.safetensors", LAYOUTS["sdxl"])
    out = tmp_path / "run"
    config = tmp_path / "run.json"
    config.write_text(
        json.dumps(
            {
                "model_family": "sd1x",
                "pretrained_model_name_or_path": str(sdxl),
                "output_dir": str(out),
                "datasets": [{"path": str(tmp_path)}],
            }
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "set model_family to sdxl" in proc.stderr
    assert not out.exists()


def test_reading_a_header_imports_no_torch(tmp_path: Path) -> None:
    file = write_safetensors(tmp_path / "m.safetensors", LAYOUTS["sdxl"])
    code = (
        "import sys; from registry.model_files import inspect_model_file; "
        f"print(inspect_model_file({str(file)!r}).family, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["sdxl", "False"]


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot read"):
        inspect_model_file(tmp_path / "gone.safetensors")
