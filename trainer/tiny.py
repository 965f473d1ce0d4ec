"""`python -m trainer.tiny FAMILY DIR [--seed N]`: write a tiny random pipeline of FAMILY to DIR.

FAMILY is one of TINY_FAMILIES (demo, sd1x, sd2x, sdxl, flux-dev, flux-schnell, sd3). The folder
is a diffusers pipeline that `DiffusionPipeline.from_pretrained(DIR)` loads with no download:
random weights (fixed seed), every part a few layers wide, tokenizers built offline (the
byte-level CLIP vocabulary of trainer.tokenizer_files, and for T5 a small Unigram tokenizer
made with the `tokenizers` package). Tests, benches and anyone checking the project use it.

The SD families are trainer.demo_model's tiny pipelines; Flux and SD3 keep their real
architecture's shape rules (Flux packs 2x2 latent patches, so its transformer's in_channels are
4x the VAE's latent channels; SD3 pads the concatenated CLIP embeddings to the T5 width) with
an 8x-downsampling VAE, so a 64 px image is an 8x8 latent, as in the real models.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import string
import sys
import tempfile
from pathlib import Path
from typing import Any

SD_FAMILIES = ("demo", "sd1x", "sd2x", "sdxl")
TINY_FAMILIES = (*SD_FAMILIES, "flux-dev", "flux-schnell", "sd3")
# The model_family value each tiny family trains as.
MODEL_FAMILY = {
    **{f: f for f in SD_FAMILIES},
    "flux-dev": "flux",
    "flux-schnell": "flux",
    "sd3": "sd3",
}

T5_SPECIAL = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2: T5's pad, eos and unk
LATENT_CHANNELS = 4


def t5_tokenizer(folder: Path, model_max_length: int = 512) -> Any:
    """A T5 tokenizer (tokenizer.json) over single characters, built locally.

    A Unigram model like T5's sentencepiece one: each printable ASCII character alone and with
    the word-start marker, so every character of a word is one token; </s> ends every text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    from trainer.families._parts import t5_tokenizer_class

    chars = string.ascii_letters + string.digits + string.punctuation
    vocab = [(t, 0.0) for t in T5_SPECIAL] + [("▁", -2.0)]
    vocab += [(f"▁{c}", -2.5) for c in chars] + [(c, -3.0) for c in chars]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "T5Tokenizer",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "extra_ids": 0,
        "model_max_length": model_max_length,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return t5_tokenizer_class().from_pretrained(str(folder))


def _t5(vocab_size: int, d_model: int, seed: int) -> Any:
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(
        T5Config(
            vocab_size=vocab_size,
            d_model=d_model,
            d_kv=8,
            d_ff=d_model * 2,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            feed_forward_proj="gated-gelu",
            pad_token_id=0,
            eos_token_id=1,
        )
    )


def _vae(seed: int, scaling_factor: float, shift_factor: float) -> Any:
    """An 8x-downsampling VAE without quant convs, as Flux's and SD3's are."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=8,
        sample_size=64,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
    )
    sharpen_posterior(vae)
    return vae


def sharpen_posterior(vae: Any) -> None:
    """A trained VAE's posterior is nearly a point (a tiny std); a random one's has std ~1,
    which would bury every image in sampling noise that no denoiser can learn. Make the
    log-variance outputs small and constant (the layer that emits them: quant_conv, or the
    encoder's conv_out when there is none)."""
    import torch

    layer = vae.quant_conv if vae.quant_conv is not None else vae.encoder.conv_out
    c = vae.config.latent_channels
    with torch.no_grad():
        layer.weight[c:] = 0.0
        layer.bias[c:] = -12.0


def _clip(folder: Path, name: str, projection: bool, seed: int) -> tuple[Any, Any]:
    from trainer.demo_model import _text_encoder, _tokenizer

    tok = _tokenizer(folder / name)
    return tok, _text_encoder(len(tok), 32, 32 if projection else None, seed)


def build_flux(folder_for_tokenizers: Path, guidance: bool, seed: int = 0) -> Any:
    """Flux.1 dev (guidance embedding, resolution-dependent shift) or schnell (neither)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tok, clip = _clip(folder_for_tokenizers, "tokenizer", False, seed + 2)
    t5_tok = t5_tokenizer(folder_for_tokenizers / "tokenizer_2")
    t5 = _t5(len(t5_tok), 32, seed + 3)
    torch.manual_seed(seed + 4)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=LATENT_CHANNELS * 4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5 width
        pooled_projection_dim=32,  # CLIP width
        guidance_embeds=guidance,
        axes_dims_rope=(4, 4, 8),
    )
    if guidance:  # dev's scheduler: shift by image size (the pipeline computes mu)
        scheduler = FlowMatchEulerDiscreteScheduler(
            shift=3.0,
            use_dynamic_shifting=True,
            base_shift=0.5,
            max_shift=1.15,
            base_image_seq_len=256,
            max_image_seq_len=4096,
        )
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
    return FluxPipeline(
        scheduler=scheduler,
        vae=_vae(seed + 1, 0.3611, 0.1159),
        text_encoder=clip,
        tokenizer=tok,
        text_encoder_2=t5,
        tokenizer_2=t5_tok,
        transformer=transformer,
    )


def build_sd3(folder_for_tokenizers: Path, seed: int = 0) -> Any:
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    tok, clip_l = _clip(folder_for_tokenizers, "tokenizer", True, seed + 2)
    tok2, clip_g = _clip(folder_for_tokenizers, "tokenizer_2", True, seed + 5)
    t5_tok = t5_tokenizer(folder_for_tokenizers / "tokenizer_3")
    # The two CLIP widths (32 + 32) are zero-padded to the T5 width: it must not be smaller.
    t5 = _t5(len(t5_tok), 64, seed + 3)
    torch.manual_seed(seed + 4)
    transformer = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=64,  # T5 width
        caption_projection_dim=32,  # = heads x head dim
        pooled_projection_dim=64,  # both CLIP projections
        pos_embed_max_size=32,  # up to 512 px
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(seed + 1, 1.5305, 0.0609),
        text_encoder=clip_l,
        tokenizer=tok,
        text_encoder_2=clip_g,
        tokenizer_2=tok2,
        text_encoder_3=t5,
        tokenizer_3=t5_tok,
    )


def _sharpen_saved_vae(folder: Path) -> None:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(str(folder))
    sharpen_posterior(vae)
    tmp = folder.with_name(f".{folder.name}-sharp")
    vae.save_pretrained(str(tmp), safe_serialization=True)
    shutil.rmtree(folder)
    os.replace(tmp, folder)


def write_tiny(family: str, path: Path, seed: int = 0) -> Path:
    """Write a tiny `family` pipeline (one of TINY_FAMILIES) to `path`; atomic: temp + rename."""
    if family not in TINY_FAMILIES:
        raise ValueError(
            f"unknown tiny family {family!r}; choose one of {', '.join(TINY_FAMILIES)}"
        )
    if family in SD_FAMILIES:
        from trainer.demo_model import write_tiny_pipeline

        path = write_tiny_pipeline(Path(path), family, seed)
        if family != "demo":  # the demo VAE is fitted to its images already
            _sharpen_saved_vae(path / "vae")
        return path
    from trainer.tokenizer_files import write_clip_tokenizer_files

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        tok_dir = tmp / "_tok"
        if family == "sd3":
            pipe = build_sd3(tok_dir, seed)
        else:
            pipe = build_flux(tok_dir, guidance=family == "flux-dev", seed=seed)
        pipe.save_pretrained(tmp / "pipe", safe_serialization=True)
        for name in ("tokenizer", "tokenizer_2"):
            if (tok_dir / name / "vocab.json").exists():  # the CLIP vocabulary, as written
                write_clip_tokenizer_files(tmp / "pipe" / name)
        (tmp / "pipe" / "tunerdeck.json").write_text(json.dumps({"family": family, "seed": seed}))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp / "pipe", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.tiny",
        description="Write a tiny random diffusers pipeline of a model family (nothing is downloaded).",
    )
    parser.add_argument("family", choices=TINY_FAMILIES)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = write_tiny(args.family, args.dir, args.seed)
    print(f"{args.family} pipeline written to {out} (model_family = {MODEL_FAMILY[args.family]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
