"""Files users bring and take away: single-file base models (original LDM / ComfyUI layout),
LoRAs in the layout ComfyUI / A1111 load, full fine-tunes as one file, and continuing a LoRA.

The tiny SD 1.x and SDXL pipelines are written as single files with trainer.original_layout
(the inverse of diffusers' single-file conversion); the single-file loader then has to give
back exactly the folder's weights."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.conftest import effective, fast, losses, read_events, run_in_process

FAMILIES = ["sd1x", "sdxl"]
LOADED = ["sd1x", "sd2x", "sdxl"]


def _cfg(family: str, folder: Path, **extra: Any) -> dict[str, Any]:
    return effective(
        {
            "model_family": family,
            "pretrained_model_name_or_path": str(folder),
            "single_file_config": str(folder),
            "datasets": [{"path": str(folder)}],  # validation wants one; nothing trains here
            **extra,
        }
    )


def _write_single_file(folder: Path, family: str, out: Path) -> Path:
    from safetensors.torch import save_file

    from trainer.families.sd import load_models
    from trainer.original_layout import pipeline_to_original

    models = load_models(_cfg(family, folder), str(folder))
    state = pipeline_to_original(family, models.unet, models.vae, models.text_encoders)
    save_file(state, str(out))
    return out


@pytest.fixture(scope="module")
def single_files(
    tmp_path_factory: pytest.TempPathFactory, sd1x_pipeline: Path, sdxl_pipeline: Path
) -> dict[str, tuple[Path, Path]]:
    """family -> (diffusers folder, the same model as one original-layout file)."""
    from trainer.demo_model import write_tiny_pipeline

    root = tmp_path_factory.mktemp("single")
    sd2x = write_tiny_pipeline(root / "tiny-sd2x", "sd2x")  # OpenCLIP text encoder, v-pred
    folders = {"sd1x": sd1x_pipeline, "sd2x": sd2x, "sdxl": sdxl_pipeline}
    return {
        fam: (folder, _write_single_file(folder, fam, root / f"{fam}.safetensors"))
        for fam, folder in folders.items()
    }


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb), sorted(set(sa) ^ set(sb))[:5]
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)


@pytest.mark.parametrize("family", LOADED)
def test_a_single_file_loads_exactly_the_folders_weights(
    family: str, single_files: dict[str, tuple[Path, Path]]
) -> None:
    from registry.model_files import inspect_model_file
    from trainer.families.sd import load_models

    folder, file = single_files[family]
    assert inspect_model_file(file).family == family  # detected from the tensor names
    cfg = _cfg(family, folder)
    from_folder = load_models(cfg, str(folder))
    from_file = load_models(cfg, str(file))
    assert _max_diff(from_folder.unet, from_file.unet) == 0.0
    assert _max_diff(from_folder.vae, from_file.vae) == 0.0
    assert len(from_file.text_encoders) == len(from_folder.text_encoders)
    for te_folder, te_file in zip(from_folder.text_encoders, from_file.text_encoders, strict=True):
        assert _max_diff(te_folder, te_file) == 0.0
    assert (
        from_file.noise_scheduler.config.prediction_type
        == from_folder.noise_scheduler.config.prediction_type
    )


def test_a_single_file_of_another_family_is_refused_by_the_loader(
    single_files: dict[str, tuple[Path, Path]],
) -> None:
    from trainer.families.base import WrongFamilyError
    from trainer.families.sd import load_models

    folder, file = single_files["sdxl"]
    cfg = dict(_cfg("sdxl", folder), model_family="sd1x")
    with pytest.raises(WrongFamilyError, match=r"Stable Diffusion XL.*set model_family to sdxl"):
        load_models(cfg, str(file))


def test_a_single_file_vae_replaces_the_folders_vae(
    single_files: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    """pretrained_vae_model_name_or_path may be one VAE file (the original VAE layout)."""
    from safetensors.torch import save_file

    from trainer.families.sd import load_models
    from trainer.original_layout import vae_to_original

    folder, _ = single_files["sd1x"]
    base = load_models(_cfg("sd1x", folder), str(folder))
    changed = {k: v + 0.5 for k, v in base.vae.state_dict().items()}
    vae_file = tmp_path / "vae.safetensors"
    save_file(
        {k: v.contiguous() for k, v in vae_to_original(changed, base.vae.config).items()},
        str(vae_file),
    )
    models = load_models(
        _cfg("sd1x", folder, pretrained_vae_model_name_or_path=str(vae_file)), str(folder)
    )
    got = models.vae.state_dict()
    assert max((got[k] - changed[k]).abs().max().item() for k in changed) == 0.0


# ---- training from a file, and the LoRA layouts ------------------------------------------------


def _lora_file(run_dir: Path) -> Path:
    [file] = sorted((run_dir / "weights").glob("*.safetensors"))
    return file


def _train_from_file(
    run_dir: Path, family: str, files: dict[str, tuple[Path, Path]], images: Path, **extra: Any
) -> Path:
    folder, file = files[family]
    raw = fast(
        run_dir,
        model_family=family,
        pretrained_model_name_or_path=str(file),
        single_file_config=str(folder),
        max_train_steps=4,
        learning_rate=1e-2,
        datasets=[{"path": str(images), "bucketing": False}],
        **extra,
    )
    code, _ = run_in_process(raw)
    assert code == 0, read_events(run_dir)[-1]
    return _lora_file(run_dir)


def _image(folder: Path, family: str, lora: Path | None) -> torch.Tensor:
    import diffusers

    cls = diffusers.StableDiffusionXLPipeline if family == "sdxl" else diffusers.DiffusionPipeline
    pipe = cls.from_pretrained(str(folder))
    if lora is not None:
        pipe.load_lora_weights(str(lora))
    out = pipe(
        "tag1, a color block",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(7),
        output_type="np",
    ).images
    return torch.from_numpy(out)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_comfyui_and_diffusers_loras_of_one_run_give_the_same_image(
    family: str, single_files: dict[str, tuple[Path, Path]], image_folder: Path, tmp_path: Path
) -> None:
    """Two identical 4-step runs from the single file, saved in each layout: diffusers'
    load_lora_weights reads both and draws the same image (and not the base model's)."""
    folder, _ = single_files[family]
    kw = {"train_text_encoder": True, "run_name": f"my {family} lora"}
    comfy = _train_from_file(tmp_path / "c", family, single_files, image_folder, **kw)
    diff = _train_from_file(
        tmp_path / "d", family, single_files, image_folder, lora_format="diffusers", **kw
    )
    assert comfy.name == diff.name == f"my_{family}_lora.safetensors"  # named after the run
    base = _image(folder, family, None)
    a, b = _image(folder, family, comfy), _image(folder, family, diff)
    assert (a - b).abs().max().item() <= 1e-4
    assert (a - base).abs().max().item() > 1e-3  # the LoRA changed the picture


# Names kohya sd-scripts writes for these modules (SD 1.x: diffusers module names; SDXL: the
# original sgm UNet's input_blocks / middle_block / output_blocks), as found in LoRAs shared
# for those models.
KOHYA_SD1 = {
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": (
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    ),
    "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0": (
        "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_out_0"
    ),
    "mid_block.attentions.0.proj_in": "lora_unet_mid_block_attentions_0_proj_in",
}
KOHYA_SDXL = {
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q": (
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    ),
    "down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k": (
        "lora_unet_input_blocks_8_1_transformer_blocks_9_attn2_to_k"
    ),
    "mid_block.attentions.0.transformer_blocks.0.ff.net.2": (
        "lora_unet_middle_block_1_transformer_blocks_0_ff_net_2"
    ),
    "up_blocks.0.attentions.2.proj_out": "lora_unet_output_blocks_2_1_proj_out",
    "up_blocks.1.attentions.0.transformer_blocks.1.attn1.to_out.0": (
        "lora_unet_output_blocks_3_1_transformer_blocks_1_attn1_to_out_0"
    ),
    "up_blocks.0.upsamplers.0.conv": "lora_unet_output_blocks_2_2_conv",
    "down_blocks.0.resnets.1.conv1": "lora_unet_input_blocks_2_0_in_layers_2",
}
KOHYA_TE = {
    ("sd1x", "text_encoder", "encoder.layers.11.self_attn.q_proj"): (
        "lora_te_text_model_encoder_layers_11_self_attn_q_proj"
    ),
    ("sdxl", "text_encoder", "text_model.encoder.layers.0.mlp.fc1"): (
        "lora_te1_text_model_encoder_layers_0_mlp_fc1"
    ),
    ("sdxl", "text_encoder_2", "text_model.encoder.layers.31.self_attn.out_proj"): (
        "lora_te2_text_model_encoder_layers_31_self_attn_out_proj"
    ),
}
# The real SDXL base UNet's shape (its config.json), built on the meta device: no weights.
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


def test_kohya_names_are_the_ones_sd_scripts_writes() -> None:
    from diffusers import UNet2DConditionModel

    from trainer.lora_formats import kohya_name, unet_original_names

    for module, name in KOHYA_SD1.items():
        assert kohya_name("unet", module, False, {}) == name
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET)
    sgm = unet_original_names(unet)
    for module, name in KOHYA_SDXL.items():
        assert kohya_name("unet", module, True, sgm) == name
    for (family, part, module), name in KOHYA_TE.items():
        assert kohya_name(part, module, family == "sdxl", {}) == name


@pytest.mark.slow
def test_saved_comfyui_lora_keys_and_metadata(
    single_files: dict[str, tuple[Path, Path]], image_folder: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open

    file = _train_from_file(
        tmp_path / "run", "sdxl", single_files, image_folder, train_text_encoder=True
    )
    with safe_open(str(file), framework="pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    # tiny SDXL: attention only in down block 1 / up block 0, one layer per block
    assert "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q.lora_down.weight" in keys
    assert "lora_unet_output_blocks_0_1_transformer_blocks_0_attn2_to_k.lora_up.weight" in keys
    assert "lora_unet_middle_block_1_transformer_blocks_0_attn1_to_v.alpha" in keys
    assert any(k.startswith("lora_te1_text_model_encoder_layers_0_") for k in keys)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_1_") for k in keys)
    assert all(k.startswith(("lora_unet_", "lora_te1_", "lora_te2_")) for k in keys)
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert meta["modelspec.title"] == "run" and meta["modelspec.date"]
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "4"
    assert meta["ss_new_sd_model_hash"] == _sha256(single_files["sdxl"][1])
    assert '"img_count": 6' in meta["ss_dataset_dirs"]
    assert '"model_family": "sdxl"' in meta["tunerdeck.config"]


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- full fine-tune as one file ----------------------------------------------------------------


@pytest.mark.slow
def test_a_full_fine_tune_saved_as_one_file_loads_back_identically(
    sd1x_pipeline: Path, image_folder: Path, tmp_path: Path
) -> None:
    from trainer.families.sd import load_models

    out = tmp_path / "run"
    raw = fast(
        out,
        model_family="sd1x",
        pretrained_model_name_or_path=str(sd1x_pipeline),
        model_type="full",
        save_single_file=True,
        save_precision="fp32",
        max_train_steps=2,
        datasets=[{"path": str(image_folder), "bucketing": False}],
    )
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    weights = out / "weights"
    [file] = sorted(weights.glob("*.safetensors"))
    cfg = _cfg("sd1x", weights)
    from_folder = load_models(cfg, str(weights))
    from_file = load_models(cfg, str(file))
    assert _max_diff(from_folder.unet, from_file.unet) == 0.0
    assert _max_diff(from_folder.vae, from_file.vae) == 0.0
    assert _max_diff(from_folder.text_encoders[0], from_file.text_encoders[0]) == 0.0
    base = load_models(cfg, str(sd1x_pipeline))
    assert _max_diff(base.unet, from_file.unet) > 0  # the trained weights, not the base's


# ---- continuing a LoRA -------------------------------------------------------------------------


def _merged_base(folder: Path, family: str, lora: Path, out: Path) -> Path:
    """The base model with `lora` fused into its weights, saved as a diffusers folder."""
    import diffusers

    pipe = diffusers.DiffusionPipeline.from_pretrained(str(folder))
    pipe.load_lora_weights(str(lora))
    pipe.fuse_lora()
    pipe.unload_lora_weights()
    pipe.save_pretrained(str(out))
    # the tiny tokenizer's own vocabulary files, as the fixture folder has them
    shutil.copytree(folder / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["comfyui", "diffusers"])
def test_init_lora_starts_where_the_saved_lora_left_off(
    fmt: str, sd1x_pipeline: Path, image_folder: Path, tmp_path: Path
) -> None:
    """A run continuing a LoRA (init_lora) and a run on the base model with that LoRA fused
    into its weights see the same model: with the same seed and batch their first losses are
    equal. A run from the bare base sees another model (another loss)."""

    def run(name: str, base: Path, steps: int, **extra: Any) -> dict[int, float]:
        raw = fast(
            tmp_path / name,
            model_family="sd1x",
            pretrained_model_name_or_path=str(base),
            max_train_steps=steps,
            learning_rate=5e-2,
            lora_format=fmt,
            datasets=[{"path": str(image_folder), "bucketing": False}],
            **extra,
        )
        code, _ = run_in_process(raw)
        assert code == 0, read_events(tmp_path / name)[-1]
        return losses(tmp_path / name)

    first = run("first", sd1x_pipeline, 4, lora_alpha=2.0)
    lora = _lora_file(tmp_path / "first")
    # alpha differs from the first run: the file's strength is kept whatever the new scale
    continued = run("continued", sd1x_pipeline, 1, init_lora=str(lora), lora_alpha=8.0)
    merged = _merged_base(sd1x_pipeline, "sd1x", lora, tmp_path / "merged")
    reference = run("reference", merged, 1)
    assert continued[1] == pytest.approx(reference[1], rel=1e-4, abs=1e-6)
    assert abs(continued[1] - first[1]) > 1e-4  # not the untrained start


def test_init_lora_with_other_targets_is_an_error_naming_them(
    sd1x_pipeline: Path, image_folder: Path, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    from trainer.families.sd import add_lora, load_models

    # A kohya LoRA on attn1.to_q only, where the run targets q/k/v/out.
    file = tmp_path / "partial.safetensors"
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    save_file(
        {
            f"{name}.lora_down.weight": torch.zeros(4, 32),
            f"{name}.lora_up.weight": torch.zeros(32, 4),
            f"{name}.alpha": torch.tensor(4.0),
        },
        str(file),
    )
    cfg = _cfg("sd1x", sd1x_pipeline, init_lora=str(file))
    models = load_models(cfg, str(sd1x_pipeline))
    with pytest.raises(ValueError, match=r"lacks .*make lora_target_modules"):
        add_lora(models, cfg)


@pytest.mark.parametrize("fmt", ["comfyui", "diffusers"])
def test_a_checkpoints_lora_file_continues_as_the_same_adapters(
    fmt: str, sd1x_pipeline: Path, tmp_path: Path
) -> None:
    """export_checkpoint_lora (what a checkpoint writes beside its state) read back by
    init_lora gives every adapted layer the same update, whatever the new run's alpha."""
    from peft.tuners.lora import LoraLayer

    from trainer.families.sd import add_lora, load_models
    from trainer.weights import export_checkpoint_lora

    def updates(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {
            name: (m.lora_B["default"].weight.flatten(1) @ m.lora_A["default"].weight.flatten(1))
            * m.scaling["default"]
            for name, m in unet.named_modules()
            if isinstance(m, LoraLayer)
        }

    cfg = _cfg(
        "sd1x",
        sd1x_pipeline,
        lora_alpha=2.0,
        lora_format=fmt,
        output_dir=str(tmp_path),
        save_precision="fp32",  # exact comparison (fp16 files round the weights)
    )
    models = load_models(cfg, str(sd1x_pipeline))
    add_lora(models, cfg)
    torch.manual_seed(0)
    for m in models.unet.modules():
        if isinstance(m, LoraLayer):
            torch.nn.init.normal_(m.lora_B["default"].weight, std=0.1)
    (tmp_path / "ckpt").mkdir()
    file = export_checkpoint_lora(cfg, models, [models.unet], tmp_path / "ckpt")
    assert file.name == f"{tmp_path.name}.safetensors"
    again = _cfg("sd1x", sd1x_pipeline, lora_alpha=16.0, init_lora=str(file))
    continued = load_models(again, str(sd1x_pipeline))
    add_lora(continued, again)
    want, got = updates(models.unet), updates(continued.unet)
    assert want.keys() == got.keys() and want
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_without_configs_at_hand_the_loader_says_what_to_set(
    single_files: dict[str, tuple[Path, Path]],
) -> None:
    """single_file_config empty and the reference model not in the local cache: nothing is
    downloaded, and the message names the field to set."""
    from huggingface_hub import try_to_load_from_cache

    from trainer.families.sd import load_models
    from trainer.single_file import REFERENCE_REPOS

    if isinstance(try_to_load_from_cache(REFERENCE_REPOS["sd1x"], "model_index.json"), str):
        pytest.skip("the SD 1.5 reference model is in this machine's Hugging Face cache")
    folder, file = single_files["sd1x"]
    cfg = dict(_cfg("sd1x", folder), single_file_config="")
    with pytest.raises(ValueError, match="set single_file_config to a diffusers folder"):
        load_models(cfg, str(file))


def test_a_pickle_checkpoint_loads_only_when_allowed(
    single_files: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from registry.model_files import ModelFileError
    from trainer.families.sd import load_models

    folder, file = single_files["sd1x"]
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(str(file)), "global_step": 1}, str(ckpt))
    refused = dict(_cfg("sd1x", folder), allow_pickle_checkpoints=False)
    with pytest.raises(ModelFileError, match="pickle checkpoint"):
        load_models(refused, str(ckpt))
    allowed = _cfg("sd1x", folder, allow_pickle_checkpoints=True)
    from_ckpt = load_models(allowed, str(ckpt))
    from_file = load_models(allowed, str(file))
    assert _max_diff(from_ckpt.unet, from_file.unet) == 0.0
