"""Every checkpoint of a LoRA run holds the LoRA file other tools load: diffusers'
load_lora_weights on a fresh base pipeline reproduces the model as it was at that checkpoint
(base + adapters + that checkpoint's adapter tensors), UNet and text encoder alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.conftest import fast, read_events, run_in_process

pytestmark = pytest.mark.slow


def _outputs(pipe: Any) -> dict[str, torch.Tensor]:
    """UNet output on fixed inputs, and the prompt embeddings."""
    for m in pipe.components.values():
        if isinstance(m, torch.nn.Module):
            m.eval()
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 8, 8, generator=g)
    embeds = torch.randn(1, 77, pipe.unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        unet = pipe.unet(latents, torch.tensor([500]), embeds).sample
        prompt = pipe.encode_prompt(
            prompt="zxq, a color block",
            device=torch.device("cpu"),
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )[0]
    return {"unet": unet, "prompt": prompt}


def _at_checkpoint(cfg: Any, base: Path, folder: Path) -> dict[str, torch.Tensor]:
    """The trained model as the checkpoint holds it: base + add_lora + its adapter tensors."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    from trainer.families.sd import add_lora, load_models

    models = load_models(cfg, str(base))
    add_lora(models, cfg)
    for i, module in enumerate([models.unet, *models.text_encoders]):
        result = set_peft_model_state_dict(module, load_file(folder / f"adapter_{i}.safetensors"))
        assert not getattr(result, "unexpected_keys", None)
    return _outputs(models.pipeline(models.unet, models.text_encoders, models.inference_scheduler))


def test_each_checkpoint_holds_a_lora_file_that_loads_as_that_checkpoint(
    tmp_path: Path, sd1x_pipeline: Path, image_folder: Path
) -> None:
    from diffusers import StableDiffusionPipeline
    from safetensors import safe_open

    from trainer.checkpoints import list_checkpoints

    out = tmp_path / "run"
    raw = fast(
        out,
        model_family="sd1x",
        pretrained_model_name_or_path=str(sd1x_pipeline),
        datasets=[{"path": str(image_folder), "bucketing": False}],
        max_train_steps=4,
        checkpointing_steps=2,
        learning_rate=2e-2,  # the adapters move visibly between checkpoints
        text_encoder_lr=2e-2,
        train_text_encoder=True,
        save_precision="fp32",
    )
    code, cfg = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    checkpoints = list_checkpoints(out)
    assert [step for step, _ in checkpoints] == [2, 4]

    seen = []
    for _, folder in checkpoints:
        files = [f for f in folder.glob("*.safetensors") if not f.name.startswith("adapter_")]
        assert len(files) == 1, sorted(p.name for p in folder.iterdir())
        pipe = StableDiffusionPipeline.from_pretrained(sd1x_pipeline)
        pipe.load_lora_weights(str(folder), weight_name=files[0].name)
        loaded, want = _outputs(pipe), _at_checkpoint(cfg, sd1x_pipeline, folder)
        diff = {k: float((loaded[k] - want[k]).abs().max()) for k in want}
        assert max(diff.values()) < 1e-5, (folder.name, diff)
        seen.append(loaded)
    # Each file is its own checkpoint's adapters, not one file copied.
    moved = {k: float((seen[0][k] - seen[1][k]).abs().max()) for k in seen[0]}
    assert min(moved.values()) > 1e-4, moved
    # With the final file's metadata (what was trained on included).
    (final,) = (out / "weights").glob("*.safetensors")
    with safe_open(str(final), framework="pt") as f:
        want_meta = f.metadata()
    with safe_open(str(files[0]), framework="pt") as f:
        got_meta = f.metadata()
    assert '"img_count"' in want_meta["ss_dataset_dirs"], want_meta["ss_dataset_dirs"]
    for key in ("ss_dataset_dirs", "ss_network_dim", "modelspec.architecture"):
        assert got_meta[key] == want_meta[key], key


@pytest.mark.parametrize("tiny", ["flux-dev", "sd3"])
def test_flow_checkpoints_hold_the_lora_file_of_their_step(
    tiny: str, tmp_path: Path, image_folder: Path
) -> None:
    """Flux / SD3: the last checkpoint's file renders exactly what the final LoRA renders, the
    first checkpoint's renders something else (its own, earlier adapters)."""
    import numpy as np
    from diffusers import DiffusionPipeline

    from trainer.checkpoints import list_checkpoints
    from trainer.tiny import MODEL_FAMILY, write_tiny

    base = write_tiny(tiny, tmp_path / "base")
    out = tmp_path / "run"
    raw = fast(
        out,
        model_family=MODEL_FAMILY[tiny],
        pretrained_model_name_or_path=str(base),
        datasets=[{"path": str(image_folder), "bucketing": False}],
        t5_max_length=16,
        max_train_steps=4,
        checkpointing_steps=2,
        learning_rate=1e-2,
        train_text_encoder=True,
        save_precision="fp32",
    )
    code, _ = run_in_process(raw)
    assert code == 0, read_events(out)[-1]
    checkpoints = list_checkpoints(out)
    assert [step for step, _ in checkpoints] == [2, 4]

    def render(folder: Path) -> np.ndarray:
        files = [f for f in folder.glob("*.safetensors") if not f.name.startswith("adapter_")]
        assert len(files) == 1, sorted(p.name for p in folder.iterdir())
        pipe = DiffusionPipeline.from_pretrained(str(base))
        pipe.load_lora_weights(str(folder), weight_name=files[0].name)
        pipe.set_progress_bar_config(disable=True)
        return pipe(
            "a red circle",
            num_inference_steps=2,
            height=64,
            width=64,
            guidance_scale=2.0,
            max_sequence_length=16,
            generator=torch.Generator().manual_seed(3),
            output_type="np",
        ).images[0]

    first, last = (render(folder) for _, folder in checkpoints)
    final = render(out / "weights")
    assert np.abs(last - final).max() < 1e-5
    assert np.abs(first - last).max() > 1e-4
