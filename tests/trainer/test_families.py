"""Every model family through the family interface, on its tiny pipeline (trainer.tiny): one
LoRA training step learns (finite loss, gradients on the adapters only), a LoRA saved by the
family loads into the family's diffusers pipeline and reproduces the trained model, a full
save loads with a bare from_pretrained, and a model of another family is refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.trainer.conftest import effective
from trainer.families import FAMILIES, WrongFamilyError, family_for, load_family
from trainer.tiny import MODEL_FAMILY, TINY_FAMILIES, main, write_tiny

pytestmark = pytest.mark.slow

# demo is the SD 1.x shape and its generated model fits a VAE (slow): its class is tested
# through sd1x here; `family_for("demo")` is checked below.
TINY = [f for f in TINY_FAMILIES if f != "demo"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {f: write_tiny(f, root / f) for f in TINY}


class _Plain:
    """The accelerator's only use in saving: unwrapping (nothing is wrapped here)."""

    @staticmethod
    def unwrap_model(model: Any) -> Any:
        return model


def config(tiny: str, path: Path, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    (tmp_path / "ds").mkdir(exist_ok=True)
    raw = {
        "model_family": MODEL_FAMILY[tiny],
        "pretrained_model_name_or_path": str(path),
        "output_dir": str(tmp_path / "run"),
        "datasets": [{"path": str(tmp_path / "ds")}],
        "resolution": 64,
        "t5_max_length": 16,
        "lora_rank": 4,
        "lora_alpha": 8.0,  # scale 2: the saved file must still reproduce the model
        "lora_target_modules": ["to_q", "to_k", "to_v", "to_out.0", "ff.net.2"],
    }
    return effective(raw | extra)


def batch(size: int = 2) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    return {
        "pixel_values": torch.rand(size, 3, 64, 64, generator=g) * 2 - 1,
        "captions": ["a red square", "a blue circle"][:size],
        "original_sizes": [(64, 64)] * size,
        "crop_top_lefts": [(0, 0)] * size,
        "target_sizes": [(64, 64)] * size,
    }


def lora_model(cfg: dict[str, Any]) -> Any:
    torch.manual_seed(0)
    model = load_family(cfg)
    for part in (model.vae, model.denoiser, *model.text_encoders):
        part.requires_grad_(False)
    model.add_lora()
    return model


def step_loss(model: Any, b: dict[str, Any]) -> torch.Tensor:
    with torch.no_grad():
        latents = model.scale_latents(model.vae.encode(b["pixel_values"]).latent_dist.sample())
    embeds = model.encode_prompts(model.text_encoders, b["captions"])
    noised = model.add_noise(latents, b)
    pred = model.predict(model.denoiser, noised, embeds, b)
    assert pred.shape == noised.target.shape
    return model.loss(pred, noised)


def trained_params(model: Any) -> list[torch.nn.Parameter]:
    modules = [model.denoiser, *(model.text_encoders[i] for i in model.trainable_text_encoders())]
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def image(pipe: Any, model: Any) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    kwargs = model.validation_call(model.cfg) | {"guidance_scale": 2.0}
    kwargs = {k: v for k, v in kwargs.items() if k != "negative_prompt"}
    out = pipe(
        "a red square",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(1),
        output_type="np",
        **kwargs,
    )
    return out.images[0]


def test_registry_maps_every_model_family() -> None:
    from registry.catalogue import FIELDS

    assert set(FIELDS["model_family"].choice_values) == set(FAMILIES)
    assert family_for("sd1x") is family_for("sd2x")
    assert family_for("demo").pipeline_class_name == "StableDiffusionPipeline"
    with pytest.raises(ValueError, match="unknown model_family 'kandinsky'"):
        family_for("kandinsky")


@pytest.mark.parametrize("tiny", TINY)
@pytest.mark.parametrize("train_te", [False, True], ids=["unet-only", "with-te"])
def test_one_lora_step_learns(tiny: str, train_te: bool, tiny_models: dict, tmp_path: Path) -> None:
    cfg = config(tiny, tiny_models[tiny], tmp_path, train_text_encoder=train_te)
    model = lora_model(cfg)
    params = trained_params(model)
    assert params and all(
        "lora" in n for m in [model.denoiser] for n, p in m.named_parameters() if p.requires_grad
    )
    loss = step_loss(model, batch())
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in params]
    assert all(g is not None for g in grads), "an adapter that never reaches the loss"
    assert sum(float(g.abs().sum()) for g in grads) > 0
    te_adapters = [
        n
        for i in model.trainable_text_encoders()
        for n, _ in model.text_encoders[i].named_parameters()
        if "lora" in n
    ]
    assert bool(te_adapters) == train_te
    # T5 never trains.
    if tiny != "sd2x" and len(model.text_encoders) > len(model.trainable_text_encoder_names):
        assert not any(p.requires_grad for p in model.text_encoders[-1].parameters())


@pytest.mark.parametrize("tiny", TINY)
def test_saved_lora_loads_and_reproduces_the_trained_model(
    tiny: str, tiny_models: dict, tmp_path: Path
) -> None:
    from diffusers import DiffusionPipeline

    cfg = config(tiny, tiny_models[tiny], tmp_path, train_text_encoder=True)
    model = lora_model(cfg)
    opt = torch.optim.Adam(trained_params(model), lr=3e-2)
    for _ in range(2):
        step_loss(model, batch()).backward()
        opt.step()
        opt.zero_grad()
    trained = image(model.pipeline(model.denoiser, model.text_encoders), model)
    out = model.save_weights(_Plain(), model.denoiser, model.text_encoders, None, tmp_path / "w")
    [lora_file] = sorted(out.glob("*.safetensors"))  # SD families: named after the run

    from safetensors import safe_open

    with safe_open(str(lora_file), "pt") as f:
        meta = f.metadata()
    assert meta["tunerdeck.family"] == cfg["model_family"]
    assert meta["tunerdeck.base_model"] == str(tiny_models[tiny])
    assert meta["tunerdeck.rank"] == "4"

    pipe = DiffusionPipeline.from_pretrained(str(tiny_models[tiny]))
    assert type(pipe).__name__ == model.pipeline_class_name
    base = image(pipe, model)
    pipe.load_lora_weights(str(out))
    loaded = image(pipe, model)
    assert np.abs(loaded - base).max() > 1e-3, "the LoRA changes nothing"
    np.testing.assert_allclose(loaded, trained, atol=2e-3)


@pytest.mark.parametrize("tiny", ["flux-dev", "sd3"])
def test_full_fine_tune_saves_a_loadable_folder(
    tiny: str, tiny_models: dict, tmp_path: Path
) -> None:
    from diffusers import DiffusionPipeline

    cfg = config(tiny, tiny_models[tiny], tmp_path, model_type="full", save_precision="fp32")
    model = load_family(cfg)
    model.vae.requires_grad_(False)
    for te in model.text_encoders:
        te.requires_grad_(False)
    opt = torch.optim.SGD(model.denoiser.parameters(), lr=1e-2)
    step_loss(model, batch()).backward()
    opt.step()
    out = model.save_weights(_Plain(), model.denoiser, model.text_encoders, None, tmp_path / "w")
    pipe = DiffusionPipeline.from_pretrained(str(out))
    assert type(pipe).__name__ == model.pipeline_class_name
    for (name, saved), trained in zip(
        pipe.transformer.state_dict().items(), model.denoiser.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(saved, trained, msg=name)


def test_sd3_without_t5_trains_and_full_save_keeps_t5(tiny_models: dict, tmp_path: Path) -> None:
    from diffusers import DiffusionPipeline

    cfg = config("sd3", tiny_models["sd3"], tmp_path, sd3_drop_t5=True, model_type="full")
    model = load_family(cfg)
    assert len(model.text_encoders) == 2
    embeds = model.encode_prompts(model.text_encoders, ["a red square"])
    assert embeds["prompt_embeds"].shape[1] == 77 + 16
    assert not embeds["prompt_embeds"][:, 77:].any()  # the T5 part: zeros
    assert torch.isfinite(step_loss(model, batch(1)))
    out = model.save_weights(_Plain(), model.denoiser, model.text_encoders, None, tmp_path / "w")
    assert DiffusionPipeline.from_pretrained(str(out)).text_encoder_3 is not None


@pytest.mark.parametrize(
    ("folder", "family", "found"),
    [
        ("sdxl", "flux", "StableDiffusionXLPipeline"),
        ("flux-dev", "sdxl", "FluxPipeline"),
        ("sd3", "flux", "StableDiffusion3Pipeline"),
        ("flux-schnell", "sd1x", "FluxPipeline"),
    ],
)
def test_a_model_of_another_family_is_refused_by_name(
    folder: str, family: str, found: str, tiny_models: dict, tmp_path: Path
) -> None:
    cfg = config(folder, tiny_models[folder], tmp_path) | {"model_family": family}
    with pytest.raises(WrongFamilyError) as err:
        load_family(cfg)
    message = str(err.value)
    assert f"model_family is {family}" in message
    assert found in message
    assert f"set model_family to {MODEL_FAMILY[folder]}" in message


def test_flux_variant_is_read_from_the_transformer(tiny_models: dict, tmp_path: Path) -> None:
    dev = load_family(config("flux-dev", tiny_models["flux-dev"], tmp_path, t5_max_length=0))
    schnell = load_family(
        config("flux-schnell", tiny_models["flux-schnell"], tmp_path, t5_max_length=0)
    )
    assert (dev.guidance, schnell.guidance) == (True, False)
    assert (dev.t5_length, schnell.t5_length) == (512, 256)


def test_tiny_command_writes_a_loadable_pipeline(tmp_path: Path, capsys: Any) -> None:
    from diffusers import DiffusionPipeline
    from transformers import T5TokenizerFast

    assert main(["flux-schnell", str(tmp_path / "f")]) == 0
    assert "model_family = flux" in capsys.readouterr().out
    pipe = DiffusionPipeline.from_pretrained(str(tmp_path / "f"))
    assert type(pipe).__name__ == "FluxPipeline"
    tok = T5TokenizerFast.from_pretrained(str(tmp_path / "f" / "tokenizer_2"))
    ids = tok("Red cat.").input_ids
    assert ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "Red cat."


@pytest.mark.parametrize("tiny", ["flux-dev", "sd3"])
def test_int8_base_trains_fp32_adapters_that_apply_to_the_plain_base(
    tiny: str, tiny_models: dict, tmp_path: Path
) -> None:
    """base_model_precision=int8 (torchao, on the CPU): the frozen transformer and text
    encoders hold int8 weights, the adapters stay fp32 and learn, and the saved LoRA loads into
    the unquantised pipeline and changes its output."""
    pytest.importorskip("torchao")
    from diffusers import DiffusionPipeline

    cfg = config(tiny, tiny_models[tiny], tmp_path, base_model_precision="int8")
    torch.manual_seed(0)
    model = load_family(cfg)
    for part in (model.vae, model.denoiser, *model.text_encoders):
        part.requires_grad_(False)
    model.place(torch.device("cpu"), torch.float32)
    model.quantize_base(torch.float32)
    model.add_lora()
    kinds = model.precisions()
    assert kinds["vae"] == "float32"
    assert (
        "Int8Tensor" in kinds["transformer"] and "Int8Tensor" in kinds[model.text_encoder_names[-1]]
    )
    params = trained_params(model)
    assert params and all(p.dtype == torch.float32 for p in params)
    opt = torch.optim.Adam(params, lr=3e-2)
    for _ in range(2):
        loss = step_loss(model, batch())
        assert torch.isfinite(loss)
        loss.backward()
        assert sum(float(p.grad.abs().sum()) for p in params) > 0
        opt.step()
        opt.zero_grad()
    out = model.save_weights(_Plain(), model.denoiser, model.text_encoders, None, tmp_path / "w")
    pipe = DiffusionPipeline.from_pretrained(str(tiny_models[tiny]))
    base = image(pipe, model)
    pipe.load_lora_weights(str(out))
    assert np.abs(image(pipe, model) - base).max() > 1e-3


def test_pissa_on_a_quantised_base_is_refused(tiny_models: dict, tmp_path: Path) -> None:
    cfg = config("flux-schnell", tiny_models["flux-schnell"], tmp_path)
    cfg |= {"base_model_precision": "int8", "lora_init": "pissa"}
    model = load_family(cfg)
    with pytest.raises(ValueError, match="lora_init=pissa rewrites the base weights"):
        model.quantize_base(torch.float32)
