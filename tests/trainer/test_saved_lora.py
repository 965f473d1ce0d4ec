"""A saved LoRA, loaded into a fresh base pipeline with diffusers' load_lora_weights, gives the
trained model's outputs, for every init, alpha != rank, rsLoRA, DoRA and text-encoder LoRA.

The trained model is rebuilt the way the trainer built it (load_models + add_lora, then the
last checkpoint's adapter tensors), so PiSSA's rewritten base weights are part of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.conftest import fast, read_events, run_in_process

pytestmark = pytest.mark.slow

PROMPT = "zxq, a color block"


def _train(out: Path, base: Path, family: str, images: Path, **overrides: Any) -> Any:
    raw = fast(
        out,
        model_family=family,
        pretrained_model_name_or_path=str(base),
        datasets=[{"path": str(images), "bucketing": False}],
        learning_rate=2e-2,  # the adapters move visibly in three steps
        text_encoder_lr=2e-2,
        save_precision="fp32",
        **overrides,
    )
    code, cfg = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    return cfg


def _trained_pipeline(cfg: Any, base: Path) -> Any:
    """The model as training left it: base + add_lora + the final checkpoint's adapters."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    from trainer.checkpoints import list_checkpoints
    from trainer.families.sd import add_lora, load_models

    models = load_models(cfg, str(base))
    add_lora(models, cfg)
    adapted = [models.unet, *(models.text_encoders if cfg["train_text_encoder"] else [])]
    _, last = list_checkpoints(Path(cfg["output_dir"]))[-1]
    for i, module in enumerate(adapted):
        result = set_peft_model_state_dict(module, load_file(last / f"adapter_{i}.safetensors"))
        assert not getattr(result, "unexpected_keys", None)
    return models.pipeline(models.unet, models.text_encoders, models.inference_scheduler)


def _outputs(pipe: Any, sdxl: bool) -> dict[str, torch.Tensor]:
    """UNet output on fixed latents/timestep/embeddings, and the prompt embeddings."""
    unet = pipe.unet
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 8, 8, generator=g)
    embeds = torch.randn(1, 77, unet.config.cross_attention_dim, generator=g)
    extra: dict[str, Any] = {}
    if sdxl:
        cfg = unet.config
        pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        extra["added_cond_kwargs"] = {
            "text_embeds": torch.randn(1, pooled, generator=g),
            "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]]),
        }
    for m in pipe.components.values():
        if isinstance(m, torch.nn.Module):
            m.eval()
    with torch.no_grad():
        out = {"unet": unet(latents, torch.tensor([500]), embeds, **extra).sample}
        encoded = pipe.encode_prompt(
            prompt=PROMPT,
            device=torch.device("cpu"),
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )
    for i, t in enumerate(encoded):
        if t is not None:
            out[f"prompt_{i}"] = t
    return out


def _base_pipeline(base: Path, sdxl: bool) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    cls = StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline
    return cls.from_pretrained(base)


def _loaded_pipeline(base: Path, weights: Path, sdxl: bool) -> Any:
    pipe = _base_pipeline(base, sdxl)
    pipe.load_lora_weights(str(weights))
    return pipe


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    assert a.keys() == b.keys()
    return {k: float((a[k] - b[k]).abs().max()) for k in a}


CASES = {
    "default-init-alpha1-rank4": {"lora_alpha": 1.0, "lora_rank": 4},
    "gaussian-alpha8-rank4": {"lora_init": "gaussian", "lora_alpha": 8.0, "lora_rank": 4},
    "pissa": {"lora_init": "pissa", "lora_alpha": 4.0, "lora_rank": 4},
    # DoRA has no kohya (comfyui) form that diffusers reads: saved in the diffusers layout
    "pissa-dora-rslora": {
        "lora_init": "pissa",
        "use_dora": True,
        "use_rslora": True,
        "lora_format": "diffusers",
    },
    "rslora": {"use_rslora": True, "lora_alpha": 4.0, "lora_rank": 4},
    "dora-alpha2": {
        "use_dora": True,
        "lora_alpha": 2.0,
        "lora_rank": 4,
        "lora_format": "diffusers",
    },
    "text-encoder-rslora": {
        "train_text_encoder": True,
        "use_rslora": True,
        "lora_alpha": 2.0,
        "lora_rank": 4,
        "text_encoder_lora_rank": 2,
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_saved_sd1x_lora_reproduces_the_trained_model(
    case: str, tmp_path: Path, sd1x_pipeline: Path, image_folder: Path
) -> None:
    cfg = _train(tmp_path / "run", sd1x_pipeline, "sd1x", image_folder, **CASES[case])
    trained = _outputs(_trained_pipeline(cfg, sd1x_pipeline), sdxl=False)
    base = _outputs(_base_pipeline(sd1x_pipeline, False), False)
    moved = _max_diff(trained, base)
    assert moved["unet"] > 1e-3, moved  # the adapter really changes the output
    if cfg["train_text_encoder"]:
        assert moved["prompt_0"] > 1e-3, moved
    loaded = _outputs(_loaded_pipeline(sd1x_pipeline, tmp_path / "run" / "weights", False), False)
    diff = _max_diff(trained, loaded)
    assert max(diff.values()) < 1e-5, diff


def test_pissa_lora_saved_after_a_resume_reproduces_the_trained_model(
    tmp_path: Path, sd1x_pipeline: Path, image_folder: Path
) -> None:
    """The resumed process builds the PiSSA init again from the same base model, so the
    conversion still subtracts the init the trained adapters started from."""
    import shutil

    first = tmp_path / "first"
    common = {"lora_init": "pissa", "lora_alpha": 2.0, "max_train_steps": 4}
    _train(first, sd1x_pipeline, "sd1x", image_folder, checkpointing_steps=2, **common)
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    ckpt = first / "checkpoints" / "checkpoint-2"
    shutil.copytree(ckpt, out / "checkpoints" / "checkpoint-2")
    cfg = _train(
        out, sd1x_pipeline, "sd1x", image_folder, resume_from_checkpoint="latest", **common
    )
    assert any("resumed from" in e["data"].get("message", "") for e in read_events(out))
    trained = _outputs(_trained_pipeline(cfg, sd1x_pipeline), sdxl=False)
    loaded = _outputs(_loaded_pipeline(sd1x_pipeline, out / "weights", False), False)
    diff = _max_diff(trained, loaded)
    assert max(diff.values()) < 1e-5, diff


@pytest.mark.parametrize("lora_init", ["default", "pissa"])
def test_saved_sdxl_text_encoder_lora_reproduces_the_trained_model(
    lora_init: str, tmp_path: Path, sdxl_pipeline: Path, image_folder: Path
) -> None:
    cfg = _train(
        tmp_path / "run",
        sdxl_pipeline,
        "sdxl",
        image_folder,
        train_text_encoder=True,
        lora_init=lora_init,
        lora_alpha=1.0,
        lora_rank=4,
        text_encoder_lora_rank=2,
    )
    trained = _outputs(_trained_pipeline(cfg, sdxl_pipeline), sdxl=True)
    base = _outputs(_base_pipeline(sdxl_pipeline, True), True)
    moved = _max_diff(trained, base)
    assert min(moved.values()) > 1e-3, moved  # UNet, prompt and pooled embeddings all moved
    loaded = _outputs(_loaded_pipeline(sdxl_pipeline, tmp_path / "run" / "weights", True), True)
    diff = _max_diff(trained, loaded)
    assert max(diff.values()) < 1e-5, diff


@pytest.mark.parametrize("use_rslora", [False, True])
def test_text_encoder_adapters_have_the_unet_adapters_strength(
    use_rslora: bool, sd1x_pipeline: Path, image_folder: Path
) -> None:
    """A text-encoder rank other than the UNet rank keeps the UNet's alpha/r (or, with rsLoRA,
    alpha/sqrt(r)) scale."""
    from peft.tuners.lora import LoraLayer

    from tests.trainer.conftest import effective
    from trainer.families.sd import add_lora, load_models

    cfg = effective(
        {
            "model_family": "sd1x",
            "pretrained_model_name_or_path": str(sd1x_pipeline),
            "lora_rank": 16,
            "lora_alpha": 8.0,
            "use_rslora": use_rslora,
            "train_text_encoder": True,
            "text_encoder_lora_rank": 4,
            "datasets": [{"path": str(image_folder)}],
        }
    )
    models = load_models(cfg, str(sd1x_pipeline))
    add_lora(models, cfg)

    def scales(module: torch.nn.Module) -> list[float]:
        return [m.scaling["default"] for m in module.modules() if isinstance(m, LoraLayer)]

    expected = 8.0 / (16**0.5 if use_rslora else 16)
    assert scales(models.unet) == pytest.approx([expected] * len(scales(models.unet)))
    te_scales = scales(models.text_encoders[0])
    assert te_scales == pytest.approx([expected] * len(te_scales)) and te_scales


def test_sdxl_text_encoder_adapters_sit_only_on_layers_that_reach_the_loss(
    tmp_path: Path, sdxl_pipeline: Path, image_folder: Path
) -> None:
    """Every saved adapter was trained (lora_B starts at zero), so none sits on text encoder
    1's last layer, whose output SDXL never uses."""
    from safetensors.torch import load_file

    _train(
        tmp_path / "run",
        sdxl_pipeline,
        "sdxl",
        image_folder,
        train_text_encoder=True,
        lora_format="diffusers",  # text_encoder. / text_encoder_2. key prefixes
    )
    state = load_file(tmp_path / "run" / "weights" / "run.safetensors")
    ups = {k: v for k, v in state.items() if k.endswith("up.weight")}  # lora_B
    untrained = sorted(k for k, v in ups.items() if not v.abs().max() > 0)
    assert not untrained, untrained
    te1 = {k for k in ups if k.startswith("text_encoder.")}
    te2 = {k for k in ups if k.startswith("text_encoder_2.")}
    # The tiny encoders have 2 layers of 4 targets: encoder 1 keeps layer 0, encoder 2 both.
    assert len(te1) == 4 and all(".layers.0." in k for k in te1), sorted(te1)
    assert len(te2) == 8, sorted(te2)


def test_sdxl_text_encoder_lora_trains_in_two_processes(
    tmp_path: Path, sdxl_pipeline: Path, image_folder: Path
) -> None:
    """DDP refuses a step in which a trained parameter got no gradient: an adapter on text
    encoder 1's unused last layer stopped this run at the first step."""
    import subprocess

    from registry.config_io import save_config_file
    from tests.trainer.conftest import PYTHON, REPO, states, trainer_env

    out = tmp_path / "run"
    config = tmp_path / "run.json"
    raw = fast(
        out,
        model_family="sdxl",
        pretrained_model_name_or_path=str(sdxl_pipeline),
        datasets=[{"path": str(image_folder), "bucketing": False}],
        train_text_encoder=True,
        max_train_steps=2,
        num_processes=2,
    )
    save_config_file(config, raw)
    launcher = [PYTHON, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes"]
    launcher += ["2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    proc = subprocess.run(
        [*launcher, "-m", "trainer", "--config", str(config)],
        cwd=REPO,
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert states(out) == ["starting", "running", "completed"]


def test_pissa_on_convolution_targets_is_refused_before_training(
    tmp_path: Path, sd1x_pipeline: Path, image_folder: Path
) -> None:
    out = tmp_path / "run"
    raw = fast(
        out,
        model_family="sd1x",
        pretrained_model_name_or_path=str(sd1x_pipeline),
        datasets=[{"path": str(image_folder)}],
        lora_init="pissa",
        lora_target_modules=["to_q", "conv1", "proj_in"],  # SD 1.x: proj_in is a 1x1 conv
    )
    code, _ = run_in_process(raw)
    assert code == 1
    events = read_events(out)
    errors = [e["data"]["message"] for e in events if e["type"] == "error"]
    assert len(errors) == 1 and "['conv1', 'proj_in']" in errors[0], errors
    assert not any(e["type"] == "progress" for e in events)
