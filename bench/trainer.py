"""Steps/s of the demo model under the full trainer vs a bare training loop.

Both train the same demo LoRA on the same data and batch. Each is run for a short and a
long step count and the rate is (long - short) / (time difference), so model loading,
warm-up and the final save cancel out. Modes:
  bare            - a plain loop: encode, noise, UNet, loss, backward, optimizer step
  trainer_quiet   - `trainer.loop.train` with progress events, validation and checkpoints off
  trainer_events  - the same with a progress event at every step
Goals: trainer_quiet / bare >= 0.97, trainer_events / bare >= 0.95.
Run: .venv/bin/python bench/trainer.py   (writes bench/results/trainer.json)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BATCH = 4
RESOLUTION = 64
SHORT, LONG = 10, 60
REPEATS = 3


def _raw(out: Path, steps: int, logging_steps: int) -> dict:
    return {
        "output_dir": str(out),
        "resolution": RESOLUTION,
        "train_batch_size": BATCH,
        "max_train_steps": steps,
        "validation_steps": 0,
        "checkpointing_steps": 0,
        "logging_steps": logging_steps,
    }


def _trainer_seconds(steps: int, logging_steps: int) -> float:
    from registry.validation import validate_config
    from trainer.loop import train
    from trainer.run_config import RunConfig

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        result = validate_config(_raw(out, steps, logging_steps))
        assert result.ok, result.errors
        assert train(RunConfig(result.values), run_id="bench") == 0
        events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    ts = {e["data"]["state"]: e["ts"] for e in events if e["type"] == "lifecycle"}
    first_ckpt = next(e["ts"] for e in events if e["type"] == "checkpoint")
    return first_ckpt - ts["running"]  # the steps only: up to the end-of-run checkpoint


def _bare_seconds(steps: int) -> float:
    import torch
    import torch.nn.functional as F

    from registry.defaults import default_config, default_dataset
    from trainer.data import build_train_data, collate
    from trainer.demo_dataset import ensure_demo_dataset
    from trainer.models import add_lora, encode_tokens, load_models, tokenize

    cfg = default_config()
    torch.manual_seed(cfg["seed"])
    models = load_models(cfg, str(__import__("trainer.demo_model").demo_model.ensure_demo_model()))
    models.vae.requires_grad_(False)
    models.unet.requires_grad_(False)
    for te in models.text_encoders:
        te.requires_grad_(False)
    add_lora(models, cfg)
    entry = default_dataset() | {"path": str(ensure_demo_dataset())}
    data = build_train_data([entry], RESOLUTION, BATCH, cfg["seed"], True, warn=print)
    loader = torch.utils.data.DataLoader(
        data.dataset, batch_sampler=data.sampler, collate_fn=collate
    )
    params = [p for p in models.unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg["learning_rate"])
    sched = models.noise_scheduler
    unet, vae = models.unet, models.vae
    unet.train()
    done, epoch = 0, 0
    start = time.perf_counter()
    while done < steps:
        data.sampler.set_epoch(epoch)
        for batch in loader:
            with torch.no_grad():
                dist = vae.encode(batch["pixel_values"]).latent_dist
                latents = (
                    dist.mean + dist.std * torch.randn_like(dist.mean)
                ) * vae.config.scaling_factor
                embeds, _ = encode_tokens(
                    models.text_encoders, tokenize(models, batch["captions"]), False
                )
            noise = torch.randn_like(latents)
            t = torch.randint(0, 1000, (latents.shape[0],))
            pred = unet(sched.add_noise(latents, noise, t), t, embeds, return_dict=False)[0]
            loss = F.mse_loss(pred, noise)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            done += 1
            if done >= steps:
                break
        epoch += 1
    return time.perf_counter() - start


def _rate(measure, *args) -> float:
    rates = []
    for _ in range(REPEATS):
        short = measure(SHORT, *args)
        long = measure(LONG, *args)
        rates.append((LONG - SHORT) / (long - short))
    return statistics.median(rates)


def main() -> None:
    os.environ.setdefault("TUNERDECK_HOME", str(Path(tempfile.gettempdir()) / "tunerdeck-bench"))
    import torch

    bare = _rate(_bare_seconds)
    quiet = _rate(_trainer_seconds, 0)
    events = _rate(_trainer_seconds, 1)
    result = {
        "model": "demo LoRA (rank 4)",
        "resolution": RESOLUTION,
        "batch_size": BATCH,
        "torch_threads": torch.get_num_threads(),
        "bare_steps_per_s": round(bare, 3),
        "trainer_quiet_steps_per_s": round(quiet, 3),
        "trainer_events_steps_per_s": round(events, 3),
        "ratio_quiet": round(quiet / bare, 3),
        "ratio_events": round(events / bare, 3),
        "goal_ratio_quiet": 0.97,
        "goal_ratio_events": 0.95,
    }
    for k, v in result.items():
        print(f"{k:28s} {v}")
    out = REPO / "bench" / "results" / "trainer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
