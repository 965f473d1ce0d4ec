"""Seconds per step of the full trainer vs a bare training loop, on tiny models of every family.

Models: the demo model (64 px, its native size) and the tiny random pipelines of
`python -m trainer.tiny` (SD 1.x, SDXL, Flux dev and schnell, SD3) at 128 px, all LoRA on the
demo images. Modes:
  bare            - a plain loop on the same parts: VAE and text encoding, noise, denoiser,
                    loss, backward, clipping, AdamW step (no accelerate, no events, no
                    bookkeeping); for Flux and SD3 the family's own flow-matching step
                    (trainer.families: the diffusers training scripts' step)
  trainer_quiet   - `trainer.loop.train` with progress events, validation, checkpoints off
  trainer_events  - the same with a progress event (and its float(loss) sync) every step
  trainer_cached  - trainer_quiet with cache_latents and cache_text_embeddings on
Each trainer mode runs against the bare loop in the same process, the two taking turns every
BLOCK_STEPS steps (bench/take_turns.py): on a shared machine core speed drifts over seconds,
and loops run one after the other differed by up to 10% between runs for that reason alone.
Both loops run in threads of their own, never in the main thread, where the same loop ran
about 2% slower (so the trainer's stop-signal handlers, which need the main thread, are not
installed here; the bench sends no signals).
A step's time is what its loop did between two denoiser forward calls (a forward pre-hook), so
model loading, the cache fill and the final save are not counted. Each loop's first turn is
warm-up; each later turn is one block (its mean step time, leaving out the turn's first step,
which pays for the switch), paired with the other loop's block next to it in time. torch's
thread pool waits passively here (OMP_WAIT_POLICY, set below): absolute step times are about
10% slower than a process running alone, the same for both loops. Every pairing runs ROUNDS
times; seconds per step are min / median / max over all blocks, and ratios are medians of the
pairs' ratios (their spread, and every pair's ratio, are saved too).
With --control a bare loop also runs in the trainer's place against the bare loop: its ratio
shows what the method reads for two identical loops (ideally 1.0), i.e. its noise and bias.
  ratio = bare s/step / trainer s/step (throughput share; goal >= 0.97 quiet, >= 0.95 events)
  outside_share = 1 - ratio: time outside the work of a step (bookkeeping, events, syncs)
  cache_saving = 1 - cached s/step / quiet s/step (both against the same bare loop)
Memory: after the paired rounds each mode runs once alone, recording the process's RSS (and
on CUDA the peak allocated memory) at its steps.
The machine's load (load average, CPU busy % before and during the runs, and the share of a
core this process got) is recorded with the figures: on a shared machine they are noisy.
Run: .venv/bin/python bench/trainer.py [--rounds N] [--control] [--models demo,sd1x,...]
     [--label L] (writes bench/results/trainer.json, or trainer_L.json)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from take_turns import TakeTurns

# Before torch loads: with the default (active) wait policy the idle thread pool of the loop
# not on turn keeps spinning and slows the other one by about 15%; passive, it sleeps.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BATCH = 2
RESOLUTION = {
    "demo": 64,
    "sd1x": 128,
    "sdxl": 128,
    "flux-dev": 128,
    "flux-schnell": 128,
    "sd3": 128,
}
FLOW = ("flux-dev", "flux-schnell", "sd3")
ALL_MODELS = "demo,sd1x,sdxl,flux-dev,flux-schnell,sd3"
WARMUP, BLOCKS, BLOCK_STEPS = 3, 4, 8
MODES = ("bare", "trainer_quiet", "trainer_events", "trainer_cached")
CONTROL = "bare_control"  # a bare loop in the trainer's place (--control)
STEPS = (1 + BLOCKS) * BLOCK_STEPS + 1  # a warm-up turn, then BLOCKS measured turns
GOALS = {"trainer_quiet": 0.97, "trainer_events": 0.95}


class DenoiserHooks:
    """Puts a forward pre-hook on every denoiser that `load_models` (SD families) or a
    flow-matching family's constructor builds; `make` gives the hook for each new one."""

    def __init__(self) -> None:
        self.make: Callable[[], Callable[..., None]] = lambda: lambda module, args: None

    def install(self) -> Callable[[], None]:
        import trainer.families.sd as tm
        from trainer.families.flow import FlowFamily

        real, real_init = tm.load_models, FlowFamily.__init__

        def load(*a: Any, **k: Any) -> Any:
            models = real(*a, **k)
            models.unet.register_forward_pre_hook(self.make())
            return models

        def init(family: Any, *a: Any, **k: Any) -> None:
            real_init(family, *a, **k)
            family.denoiser.register_forward_pre_hook(self.make())

        tm.load_models = load
        FlowFamily.__init__ = init  # type: ignore[method-assign]  # hooks each new denoiser

        def uninstall() -> None:
            tm.load_models = real
            FlowFamily.__init__ = real_init  # type: ignore[method-assign]  # undoes the hook

        return uninstall


class StepMemory:
    """The process's resident memory at each denoiser call of a loop run alone."""

    def __init__(self) -> None:
        import psutil

        self.rss: list[int] = []
        self._proc = psutil.Process()

    def hook(self) -> Callable[..., None]:
        def record(module: Any, args: Any) -> None:
            self.rss.append(self._proc.memory_info().rss)

        return record


def _blocks(turns: list[list[float]]) -> list[float]:
    """Mean seconds per step of each measured turn: the first turn is warm-up, and a turn's
    first step, which pays for the switch between the loops, is left out."""
    measured = turns[1 : 1 + BLOCKS]
    assert len(measured) == BLOCKS, f"only {len(measured)} measured turns"
    return [statistics.fmean(turn[1:]) for turn in measured]


def _raw(family: str, model: Path | None, data: Path, out: Path, mode: str) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "output_dir": str(out),
        "resolution": RESOLUTION[family],
        "train_batch_size": BATCH,
        "max_train_steps": STEPS,
        "validation_steps": 0,
        "checkpointing_steps": 0,
        "logging_steps": 1 if mode == "trainer_events" else 0,
        "cache_latents": mode == "trainer_cached",
        "cache_text_embeddings": mode == "trainer_cached",
    }
    if family != "demo":
        from trainer.tiny import MODEL_FAMILY

        raw |= {
            "model_family": MODEL_FAMILY[family],
            "pretrained_model_name_or_path": str(model),
            "datasets": [{"path": str(data)}],
        }
    return raw


def _trainer_run(family: str, model: Path | None, data: Path, mode: str) -> None:
    from registry.validation import validate_config
    from trainer.loop import train
    from trainer.run_config import RunConfig

    with tempfile.TemporaryDirectory() as tmp:
        result = validate_config(_raw(family, model, data, Path(tmp) / "run", mode))
        assert result.ok, result.errors
        assert train(RunConfig(result.values), run_id="bench") == 0


def _bare_flow_run(family: str, model: Path, data: Path) -> None:
    """The family's own flow-matching step (what diffusers' Flux/SD3 scripts do) in a plain
    loop: no accelerate, no caches, no events."""
    import torch

    from registry.validation import validate_config
    from trainer.data import build_train_data, collate
    from trainer.families import load_family

    result = validate_config(_raw(family, model, data, Path(tempfile.gettempdir()), "bare"))
    cfg = result.values
    torch.manual_seed(cfg["seed"])
    fm = load_family(cfg)  # the denoiser hook is on
    trained = fm.setup_training(torch.device("cpu"), torch.float32)
    entry = cfg["datasets"][0]
    train_data = build_train_data([entry], RESOLUTION[family], BATCH, cfg["seed"], True, warn=print)
    loader = torch.utils.data.DataLoader(
        train_data.dataset, batch_sampler=train_data.sampler, collate_fn=collate
    )
    params = [p for m in trained for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg["learning_rate"])
    done, epoch = 0, 0
    while done < STEPS:
        train_data.sampler.set_epoch(epoch)
        for batch in loader:
            with torch.no_grad():
                dist = fm.vae.encode(batch["pixel_values"]).latent_dist
                latents = fm.scale_latents(dist.mean + dist.std * torch.randn_like(dist.mean))
                embeds = fm.encode_prompts(fm.text_encoders, batch["captions"])
            noised = fm.add_noise(latents, batch)
            loss = fm.loss(fm.predict(fm.denoiser, noised, embeds, batch), noised)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            done += 1
            if done >= STEPS:
                break
        epoch += 1


def _bare_run(family: str, model: Path | None, data: Path, mode: str = "bare") -> None:
    if family in FLOW:
        assert model is not None
        _bare_flow_run(family, model, data)
        return
    import torch
    import torch.nn.functional as F

    from registry.defaults import default_config, default_dataset
    from trainer.data import build_train_data, collate
    from trainer.families import sd as tm
    from trainer.families.sdxl import sdxl_time_ids

    cfg = default_config() | {"model_family": family}
    torch.manual_seed(cfg["seed"])
    path = (
        str(model)
        if model
        else str(__import__("trainer.demo_model").demo_model.ensure_demo_model())
    )
    models = tm.load_models(cfg, path)  # the denoiser hook is on
    models.vae.requires_grad_(False)
    models.unet.requires_grad_(False)
    for te in models.text_encoders:
        te.requires_grad_(False)
    tm.add_lora(models, cfg)
    entry = default_dataset() | {"path": str(data)}
    train_data = build_train_data([entry], RESOLUTION[family], BATCH, cfg["seed"], True, warn=print)
    loader = torch.utils.data.DataLoader(
        train_data.dataset, batch_sampler=train_data.sampler, collate_fn=collate
    )
    params = [p for p in models.unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg["learning_rate"])
    sched, unet, vae = models.noise_scheduler, models.unet, models.vae
    unet.train()
    steps, done, epoch = STEPS, 0, 0
    while done < steps:
        train_data.sampler.set_epoch(epoch)
        for batch in loader:
            with torch.no_grad():
                dist = vae.encode(batch["pixel_values"]).latent_dist
                mean, std = dist.mean.contiguous(), dist.std.contiguous()
                latents = (mean + std * torch.randn_like(mean)) * vae.config.scaling_factor
                embeds, pooled = tm.encode_tokens(
                    models.text_encoders, tm.tokenize(models, batch["captions"]), models.is_sdxl
                )
            extra = {}
            if models.is_sdxl:
                ids = sdxl_time_ids(
                    batch["original_sizes"],
                    batch["crop_top_lefts"],
                    batch["target_sizes"],
                    True,
                    True,
                )
                extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": ids}
            noise = torch.randn_like(latents)
            t = torch.randint(0, 1000, (latents.shape[0],))
            noisy = sched.add_noise(latents, noise, t)
            pred = unet(noisy, t, embeds, return_dict=False, **extra)[0]
            loss = F.mse_loss(pred, noise)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            done += 1
            if done >= steps:
                break
        epoch += 1


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 5),
        "median": round(statistics.median(values), 5),
        "max": round(max(values), 5),
    }


def _quiet_libraries() -> None:
    import logging

    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    os.environ.setdefault("TQDM_DISABLE", "1")


def _tiny_models(families: list[str]) -> dict[str, Path | None]:
    """The demo model (built on first use) and a tiny pipeline per family, written once."""
    from trainer.demo_model import ensure_demo_model
    from trainer.tiny import write_tiny

    ensure_demo_model()
    home = Path(os.environ["TUNERDECK_HOME"])
    models: dict[str, Path | None] = {"demo": None}
    for family in families:
        if family != "demo":
            path = home / "bench-models" / f"tiny-{family}"
            if not (path / "model_index.json").exists():
                write_tiny(family, path)
            models[family] = path
    return models


class Measured:
    """Per family: block step times per mode, paired block ratios (bare / trainer) per
    trainer mode, RSS at the steps and CUDA peak per mode; and the load."""

    def __init__(self, families: list[str], paired: list[str]) -> None:
        self.paired = paired  # the modes paired with the bare loop
        self.per_step: dict[str, dict[str, list[float]]] = {
            f: {m: [] for m in ["bare", *paired]} for f in families
        }
        self.ratios: dict[str, dict[str, list[float]]] = {
            f: {m: [] for m in paired} for f in families
        }
        self.rss: dict[str, dict[str, float]] = {f: {} for f in families}
        self.rss_peak: dict[str, dict[str, float]] = {f: {} for f in families}
        self.cuda_peak: dict[str, dict[str, int]] = {f: {} for f in families}
        self.busy: list[float] = []
        self.own: list[float] = []


def _timed(got: Measured, work: Callable[[], dict[str, list[float]]]) -> dict[str, list[float]]:
    """Run `work`, recording how busy the machine was and how many cores this process used."""
    import psutil

    proc = psutil.Process()
    psutil.cpu_percent(interval=None)
    cpu0, wall0 = proc.cpu_times(), time.perf_counter()
    result = work()
    got.busy.append(psutil.cpu_percent(interval=None))
    cpu1, wall1 = proc.cpu_times(), time.perf_counter()
    used = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    got.own.append(used / max(wall1 - wall0, 1e-9))
    return result


def _paired(got: Measured, hooks: DenoiserHooks, family: str, args: tuple[Any, ...]) -> None:
    """Each trainer mode (and the control) against the bare loop, taking turns by blocks."""
    for mode in got.paired:
        turns = TakeTurns("trainer", "bare", turn_steps=BLOCK_STEPS)
        hooks.make = turns.pre_hook
        run = _bare_run if mode == CONTROL else _trainer_run
        steps = _timed(
            got, partial(turns.run, partial(run, *args, mode), partial(_bare_run, *args))
        )
        bare, trained = _blocks(steps["bare"]), _blocks(steps["trainer"])
        got.per_step[family]["bare"] += bare
        got.per_step[family][mode] += trained
        got.ratios[family][mode] += [b / t for b, t in zip(bare, trained, strict=True)]


def _alone(got: Measured, hooks: DenoiserHooks, family: str, args: tuple[Any, ...]) -> None:
    """Each mode once on its own, for the memory it holds during steps."""
    import torch

    runners = {"bare": _bare_run} | {m: _trainer_run for m in MODES[1:]}
    for mode in MODES:
        memory = StepMemory()
        hooks.make = memory.hook
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        runners[mode](*args, mode)
        got.rss[family][mode] = statistics.median(memory.rss[WARMUP:])
        got.rss_peak[family][mode] = max(memory.rss)
        if torch.cuda.is_available():
            got.cuda_peak[family][mode] = torch.cuda.max_memory_allocated()


def _measure(families: list[str], rounds: int, data: Path, control: bool) -> Measured:
    """ROUNDS paired runs of every trainer mode against the bare loop per family, then one
    run of each mode alone for memory."""
    from trainer.stop_signals import StopRequest

    models = _tiny_models(families)
    got = Measured(families, [*MODES[1:], *([CONTROL] if control else [])])
    hooks = DenoiserHooks()
    uninstall = hooks.install()
    install_signals = StopRequest.install
    # Handlers can only be installed from the main thread, and the paired loops run in others.
    StopRequest.install = lambda self: None  # type: ignore[method-assign]
    try:
        for family in families:
            args = (family, models[family], data)
            for _ in range(rounds):
                _paired(got, hooks, family, args)
            _alone(got, hooks, family, args)
    finally:
        uninstall()
        StopRequest.install = install_signals  # type: ignore[method-assign]
    return got


def _family_entry(family: str, got: Measured, cuda: bool) -> dict[str, Any]:
    ratios = {m: statistics.median(v) for m, v in got.ratios[family].items()}
    entry: dict[str, Any] = {
        "resolution": RESOLUTION[family],
        "seconds_per_step": {m: _spread(v) for m, v in got.per_step[family].items()},
        "paired_ratio_spread": {m: _spread(v) for m, v in got.ratios[family].items()},
    }
    entry["paired_ratios"] = {m: [round(r, 4) for r in v] for m, v in got.ratios[family].items()}
    if CONTROL in ratios:
        entry["control_ratio"] = round(ratios[CONTROL], 3)
    for mode, goal in GOALS.items():
        name = mode.removeprefix("trainer_")
        entry[f"ratio_{name}"] = round(ratios[mode], 3)
        entry[f"outside_share_{name}"] = round(1 - ratios[mode], 3)
        entry[f"meets_goal_{name}"] = ratios[mode] >= goal
    # Both against the same bare loop: cached / quiet seconds = quiet ratio / cached ratio.
    saving = 1 - ratios["trainer_quiet"] / ratios["trainer_cached"]
    entry["cache_saving_per_step"] = round(saving, 3)
    entry["rss_during_steps_mb"] = {m: round(v / 2**20) for m, v in got.rss[family].items()}
    entry["rss_peak_at_steps_mb"] = {m: round(v / 2**20) for m, v in got.rss_peak[family].items()}
    if cuda:
        entry["cuda_peak_bytes"] = got.cuda_peak[family]
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default=ALL_MODELS)
    parser.add_argument("--label", default="", help="writes trainer_LABEL.json")
    parser.add_argument(
        "--control", action="store_true", help="also pair a bare loop with the bare loop"
    )
    args = parser.parse_args()
    os.environ.setdefault("TUNERDECK_HOME", str(Path(tempfile.gettempdir()) / "tunerdeck-bench"))
    import psutil
    import torch

    from tunerdeck_common.demo_dataset import ensure_demo_dataset

    _quiet_libraries()
    load_before = os.getloadavg()
    cpu_before = psutil.cpu_percent(interval=1.0)
    started = time.perf_counter()
    families = [f.strip() for f in args.models.split(",") if f.strip()]
    got = _measure(families, args.rounds, ensure_demo_dataset(), args.control)
    cuda = torch.cuda.is_available()
    result = {
        "batch_size": BATCH,
        "repeats": args.rounds * BLOCKS,
        "rounds": args.rounds,
        "steps_per_repeat": BLOCK_STEPS,
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if cuda else "cpu",
        "goals": {"ratio_quiet": GOALS["trainer_quiet"], "ratio_events": GOALS["trainer_events"]},
        "models": {f: _family_entry(f, got, cuda) for f in families},
        # On the CPU a cache moves no memory (the VAE and text encoders stay in RAM); it saves
        # only the encoders' transient activations and the decoded images.
        "rss_note": "RSS of the whole process at the denoiser calls of each mode run alone: "
        "median after warm-up, and the highest",
        "load": {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "cpu_busy_percent_before": cpu_before,
            "cpu_busy_percent_during": _spread(got.busy),
            "own_cores_used_during": _spread(got.own),
        },
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=2))
    name = f"trainer_{args.label}.json" if args.label else "trainer.json"
    out = REPO / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
