"""LyCORIS (lora_type=lycoris): LoHa and LoKr adapters train, and the saved kohya-style file,
applied to the base weights by ComfyUI's formulas (re-implemented here from its documented
behaviour, not imported), gives the trained model's outputs; init_lora continues from that
file exactly; combinations LyCORIS cannot honour are refused by validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.conftest import effective
from tests.trainer.test_saved_lora import (
    _base_pipeline,
    _max_diff,
    _outputs,
    _train,
    _trained_pipeline,
)

CASES: dict[str, dict[str, Any]] = {
    "loha": {"lycoris_algo": "loha", "lora_rank": 4, "lora_alpha": 2.0},
    # factor -1 on the tiny model's 32-wide layers: both Kronecker factors are full matrices
    "lokr-full": {"lycoris_algo": "lokr", "lora_rank": 4, "lora_alpha": 2.0},
    # factor 2, rank 2: the larger factor is a rank-2 product (alpha / rank applies)
    "lokr-decomposed": {
        "lycoris_algo": "lokr",
        "lokr_factor": 2,
        "lokr_decompose_both": True,
        "lora_rank": 2,
        "lora_alpha": 3.0,
    },
}
# A tensor each case's file must hold (which form the factors took).
EXPECTED = {"loha": ".hada_w2_b", "lokr-full": ".lokr_w2", "lokr-decomposed": ".lokr_w2_b"}
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "conv1"]  # linear and 3x3 convolution layers
# The factors peft starts at zero (the adapter is a no-op until trained).
ZERO_AT_INIT = ("hada_w2_b", "lokr_w1", "lokr_w1_a")


def comfy_delta(params: dict[str, torch.Tensor], alpha: float | None, shape: Any) -> torch.Tensor:
    """The weight update ComfyUI applies for one LoHa / LoKr module of a file (strength 1)."""
    p = {k: v.float() for k, v in params.items()}
    if "hada_w1_a" in p:
        scale = alpha / p["hada_w1_b"].shape[0] if alpha is not None else 1.0
        w = (p["hada_w1_a"] @ p["hada_w1_b"]) * (p["hada_w2_a"] @ p["hada_w2_b"])
        return (w * scale).reshape(shape)
    dim = None
    if "lokr_w1" in p:
        w1 = p["lokr_w1"]
    else:
        w1, dim = p["lokr_w1_a"] @ p["lokr_w1_b"], p["lokr_w1_b"].shape[0]
    if "lokr_w2" in p:
        w2 = p["lokr_w2"]
    else:
        w2, dim = p["lokr_w2_a"] @ p["lokr_w2_b"], p["lokr_w2_b"].shape[0]
    if w2.ndim == 4:
        w1 = w1[:, :, None, None]
    scale = alpha / dim if (alpha is not None and dim is not None) else 1.0
    return torch.kron(w1, w2).reshape(shape) * scale


def apply_file(pipe: Any, file: Path) -> int:
    """Add every module's update in the kohya LyCORIS `file` to `pipe`'s weights; returns the
    number of modules patched (every module of the file must be found)."""
    from safetensors.torch import load_file

    tensors = load_file(str(file))
    targets = {f"lora_unet_{n.replace('.', '_')}": m for n, m in pipe.unet.named_modules()}
    # kohya names CLIP modules under text_model. (transformers 5's CLIPTextModel has no such
    # level; older versions do).
    targets |= {
        "lora_te_text_model_" + n.removeprefix("text_model.").replace(".", "_"): m
        for n, m in pipe.text_encoder.named_modules()
    }
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        module, _, param = key.partition(".")
        grouped.setdefault(module, {})[param] = value
    with torch.no_grad():
        for module, params in grouped.items():
            alpha = params.pop("alpha", None)
            layer = targets[module]
            delta = comfy_delta(params, None if alpha is None else float(alpha), layer.weight.shape)
            layer.weight += delta
    return len(grouped)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_lycoris_file_reproduces_the_trained_model_and_continues(
    case: str, tmp_path: Path, sd1x_pipeline: Path, image_folder: Path
) -> None:
    from safetensors import safe_open

    from trainer.checkpoints import list_checkpoints
    from trainer.families.sd import add_lora, load_models
    from trainer.run_config import RunConfig

    settings = {
        "lora_type": "lycoris",
        "lora_target_modules": TARGETS,
        "train_text_encoder": True,
        "text_encoder_lora_rank": 2,
        **CASES[case],
    }
    out = tmp_path / "run"
    cfg = _train(out, sd1x_pipeline, "sd1x", image_folder, **settings)
    file = out / "weights" / "run.safetensors"
    with safe_open(str(file), framework="pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert any(k.startswith("lora_unet_") and k.endswith(EXPECTED[case]) for k in keys)
    assert any(k.startswith("lora_te_text_model_encoder_layers_") for k in keys)
    assert not any("lora_down" in k or "lora_A" in k for k in keys)
    # The checkpoint carries the same file (export_lora).
    _, last = list_checkpoints(out)[-1]
    with safe_open(str(last / "run.safetensors"), framework="pt") as f:
        assert sorted(f.keys()) == sorted(keys)

    # Trained: every factor peft starts at zero has moved.
    from safetensors.torch import load_file

    adapters = load_file(str(last / "adapter_0.safetensors"))
    zero_init = [v for k, v in adapters.items() if k.rpartition(".")[2] in ZERO_AT_INIT]
    assert zero_init and all(float(v.abs().max()) > 0 for v in zero_init)

    trained = _outputs(_trained_pipeline(cfg, sd1x_pipeline), sdxl=False)
    base = _base_pipeline(sd1x_pipeline, False)
    moved = _max_diff(trained, _outputs(base, False))
    assert moved["unet"] > 1e-3 and moved["prompt_0"] > 1e-3, moved

    assert apply_file(base, file) == len({k.partition(".")[0] for k in keys})
    diff = _max_diff(trained, _outputs(base, False))
    assert max(diff.values()) < 1e-5, diff

    # init_lora: fresh adapters loaded from the file are the trained model.
    def config(**extra: Any) -> Any:
        raw = {
            **settings,
            "output_dir": str(tmp_path / "again"),
            "model_family": "sd1x",
            "pretrained_model_name_or_path": str(sd1x_pipeline),
            "datasets": [{"path": str(image_folder)}],
            **extra,
        }
        return RunConfig(effective(raw)), raw

    resumed_cfg, raw = config(init_lora=str(file))
    models = load_models(resumed_cfg, str(sd1x_pipeline))
    add_lora(models, resumed_cfg)
    resumed = models.pipeline(models.unet, models.text_encoders, models.inference_scheduler)
    diff = _max_diff(trained, _outputs(resumed, False))
    assert max(diff.values()) < 1e-5, diff

    # A file of another algorithm or rank is refused, by validation and by the loader.
    other = "lokr" if CASES[case]["lycoris_algo"] == "loha" else "loha"
    issues = _errors({**raw, "lycoris_algo": other})
    assert "lycoris_algo to " + CASES[case]["lycoris_algo"] in issues["init_lora"]
    issues = _errors({**raw, "lora_type": "standard"})
    assert "set lora_type to lycoris" in issues["init_lora"]
    if other == "lokr":  # LoHa: another rank; LoKr: another split of each dimension
        change: dict[str, Any] = {"lora_rank": 8, "text_encoder_lora_rank": 8}
    else:
        change = {"lokr_factor": 4 if cfg["lokr_factor"] == 2 else 2}
    wrong, _ = config(init_lora=str(file), **change)
    models = load_models(wrong, str(sd1x_pipeline))
    with pytest.raises(ValueError, match="does not fit this run's adapter"):
        add_lora(models, wrong)


def _errors(raw: dict[str, Any]) -> dict[str, str]:
    from registry.validation import validate_config

    return {i.path: i.message for i in validate_config(raw).errors}


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("use_dora", True, "turn use_dora off, or set lora_type to standard"),
        ("use_rslora", True, "turn use_rslora off"),
        ("lora_init", "pissa", "set lora_init to default"),
        ("lora_dropout", 0.1, "set lora_dropout to 0"),
        ("lora_format", "diffusers", "set lora_format to comfyui"),
        ("lokr_factor", 0, "must be -1 (automatic) or 1 or more"),
    ],
)
def test_validation_refuses_what_lycoris_cannot_honour(field: str, value: Any, says: str) -> None:
    raw = {"lora_type": "lycoris", "lycoris_algo": "lokr", field: value}
    assert says in _errors(raw).get(field, ""), _errors(raw)
    # The same value is fine for a standard LoRA (except the LoKr-only field).
    if field != "lokr_factor":
        assert field not in _errors({field: value})


def test_lycoris_fields_show_only_where_they_apply() -> None:
    from registry.defaults import default_config
    from registry.evaluator import PlatformContext, evaluate

    def visible(**values: Any) -> set[str]:
        states = evaluate(default_config() | values, PlatformContext(device="cpu"))
        return {n for n, s in states.items() if s.visible}

    standard = visible()
    assert "lora_type" in standard and "use_dora" in standard
    assert not {"lycoris_algo", "lokr_factor", "lokr_decompose_both"} & standard
    loha = visible(lora_type="lycoris", lycoris_algo="loha")
    assert "lycoris_algo" in loha and not {"lokr_factor", "use_dora", "lora_init"} & loha
    lokr = visible(lora_type="lycoris", lycoris_algo="lokr")
    assert {"lokr_factor", "lokr_decompose_both"} <= lokr
    assert "lycoris_algo" not in visible(model_type="full", lora_type="lycoris")


@pytest.mark.slow
def test_flux_lycoris_file_holds_the_trained_update(tmp_path: Path, image_folder: Path) -> None:
    """Flux / SD3 write the same kind of file through their own save path: transformer
    modules under lora_transformer_<diffusers path> (what ComfyUI maps onto its fused
    layers), CLIP under lora_te1_; base weight + ComfyUI's update = the trained weight."""
    from peft.tuners.lycoris_utils import LycorisLayer
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    from tests.trainer.conftest import fast, read_events, run_in_process
    from trainer.checkpoints import list_checkpoints
    from trainer.families import family_for
    from trainer.tiny import write_tiny

    base = write_tiny("flux-dev", tmp_path / "tiny-flux")
    out = tmp_path / "run"
    raw = fast(
        out,
        model_family="flux",
        pretrained_model_name_or_path=str(base),
        t5_max_length=16,
        datasets=[{"path": str(image_folder), "bucketing": False}],
        learning_rate=2e-2,
        text_encoder_lr=2e-2,
        save_precision="fp32",
        lora_type="lycoris",
        lycoris_algo="loha",
        lora_alpha=2.0,
        train_text_encoder=True,
    )
    code, cfg = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    tensors = load_file(str(out / "weights" / "run.safetensors"))

    family = family_for("flux").load(cfg, str(base))
    family.add_lora()
    _, last = list_checkpoints(out)[-1]
    parts = {
        "lora_transformer_": family.denoiser,
        "lora_te1_text_model_": family.text_encoders[0],
    }
    checked = 0
    for i, (prefix, module) in enumerate(parts.items()):
        set_peft_model_state_dict(module, load_file(str(last / f"adapter_{i}.safetensors")))
        for name, layer in module.named_modules():
            if not isinstance(layer, LycorisLayer):
                continue
            kname = prefix + name.removeprefix("text_model.").replace(".", "_")
            params = {
                k.rpartition(".")[2]: v
                for k, v in tensors.items()
                if k.startswith(f"{kname}.") and not k.endswith(".alpha")
            }
            weight = layer.get_base_layer().weight
            with torch.no_grad():
                trained = layer.get_delta_weight("default")
                loaded = comfy_delta(params, float(tensors[f"{kname}.alpha"]), weight.shape)
            assert float(trained.abs().max()) > 0, kname  # the update was trained
            assert torch.allclose(trained, loaded, atol=1e-6, rtol=1e-5), kname
            checked += 1
    assert checked * 5 == len(tensors)  # four LoHa factors and alpha per layer, nothing else


@pytest.mark.slow
def test_sdxl_lycoris_file_uses_kohya_sdxl_names_and_loads_back(
    tmp_path: Path, sdxl_pipeline: Path, image_folder: Path
) -> None:
    """SDXL files name UNet modules in the original (sgm) layout and the encoders lora_te1 /
    lora_te2, like SDXL LoRAs; init_lora reads such a file back onto fresh adapters."""
    from trainer.families.sd import add_lora, load_models
    from trainer.run_config import RunConfig
    from trainer.weights import export_checkpoint_lora

    raw = {
        "output_dir": str(tmp_path / "run"),
        "model_family": "sdxl",
        "pretrained_model_name_or_path": str(sdxl_pipeline),
        "datasets": [{"path": str(image_folder)}],
        "lora_type": "lycoris",
        "lycoris_algo": "lokr",
        "lokr_factor": 2,
        "lora_rank": 2,
        "train_text_encoder": True,
        "save_precision": "fp32",
    }
    cfg = RunConfig(effective(raw))
    models = load_models(cfg, str(sdxl_pipeline))
    add_lora(models, cfg)
    adapted = [models.unet, *models.text_encoders]
    torch.manual_seed(0)
    with torch.no_grad():  # stand-in for training: move every adapter off its no-op init
        for module in adapted:
            for name, p in module.named_parameters():
                if ".hada_" in name or ".lokr_" in name:
                    p.add_(torch.randn_like(p) * 0.05)
    file = export_checkpoint_lora(cfg, models, adapted, tmp_path)
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        keys = list(f.keys())
    sgm = ("lora_unet_input_blocks_", "lora_unet_middle_block_", "lora_unet_output_blocks_")
    unet = [k for k in keys if k.startswith("lora_unet_")]
    assert unet and all(k.startswith(sgm) for k in unet), unet[:3]
    tes = {k.split("_text_model")[0] for k in keys if k.startswith("lora_te")}
    assert tes == {"lora_te1", "lora_te2"}
    trained = _outputs(models.pipeline(models.unet, models.text_encoders, None), sdxl=True)

    again = RunConfig(effective({**raw, "init_lora": str(file)}))
    fresh = load_models(again, str(sdxl_pipeline))
    add_lora(fresh, again)
    loaded = _outputs(fresh.pipeline(fresh.unet, fresh.text_encoders, None), sdxl=True)
    diff = _max_diff(trained, loaded)
    assert max(diff.values()) < 1e-5, diff
    base = load_models(cfg, str(sdxl_pipeline))
    moved = _max_diff(trained, _outputs(base.pipeline(base.unet, base.text_encoders, None), True))
    assert min(moved.values()) > 1e-4, moved
