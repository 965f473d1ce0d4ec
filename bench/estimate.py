"""The memory estimate (registry.estimate) against measured peak memory, per model family.

On this machine (CPU only) each family's tiny random pipeline (trainer.tiny) trains a LoRA
for a few steps in its own `python -m trainer`-equivalent process. Measured: the process's
peak resident memory (ru_maxrss) minus its resident memory just before training started
(torch, diffusers and the trainer imported), i.e. what training added. Estimated: the
estimate of the same effective config with device="cpu" (no CUDA context) and the parameter
counts read from the pipeline's safetensors headers. error = estimate / measured - 1.
On a GPU machine pass --cuda to compare with torch.cuda.max_memory_allocated instead.
Run: .venv/bin/python bench/estimate.py [--families demo,sd1x,sdxl,flux-dev,sd3] [--cuda]
     (writes bench/results/estimate.json)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# FAMILY or FAMILY@RESOLUTION: the demo at two sizes shows whether activations scale right.
FAMILIES = ("demo", "demo@128", "sd1x", "sdxl", "flux-dev", "sd3")
STEPS, BATCH, RESOLUTION = 4, 2, 64

# Runs in the child: imports first (the baseline), then trains and reports the peak.
CHILD = r"""
import json, os, resource, sys
import psutil
from trainer import quiet
quiet.install()
import torch, diffusers, transformers, peft, accelerate  # noqa: F401
import trainer.loop  # noqa: F401
cuda = sys.argv[2] == "cuda"
base = psutil.Process().memory_info().rss
from trainer.__main__ import main
rc = main(["--config", sys.argv[1]])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
gpu = torch.cuda.max_memory_allocated() if cuda else 0
print("BENCH", json.dumps({"rc": rc, "base": base, "peak": peak, "gpu_peak": gpu}))
"""


def measure(spec: str, models: Path, work: Path, cuda: bool) -> dict:
    from registry.config_io import dumps_toml
    from registry.estimate import GB, count_parameters, estimate
    from registry.validation import validate_config
    from trainer.tiny import MODEL_FAMILY, write_tiny

    family, _, size = spec.partition("@")
    resolution = int(size or RESOLUTION)
    model_dir = models / family
    if not model_dir.exists():
        write_tiny(family, model_dir)
    raw = {
        "model_family": MODEL_FAMILY[family],
        "resolution": resolution,
        "train_batch_size": BATCH,
        "max_train_steps": STEPS,
        "validation_steps": 0,
        "checkpointing_steps": 0,
        "output_dir": str(work / spec.replace("@", "-")),
        "mixed_precision": "bf16" if cuda else "no",
        "use_cpu": not cuda,
    }
    if family != "demo":
        raw["pretrained_model_name_or_path"] = str(model_dir)
    config = work / f"{spec.replace('@', '-')}.toml"
    config.write_text(dumps_toml(raw))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(config), "cuda" if cuda else "cpu"],
        capture_output=True,
        text=True,
        cwd=REPO,
        # One malloc arena and one thread: the RSS of a CPU run otherwise varies by ~50 MB
        # between identical runs (per-thread arenas), more than the tiny models' own memory.
        env={
            **os.environ,
            "TUNERDECK_HOME": str(work / "home"),
            "MALLOC_ARENA_MAX": "1",
            "OMP_NUM_THREADS": "1",
        },
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        return {"family": spec, "error": (proc.stderr or proc.stdout)[-600:]}
    got = json.loads(lines[-1][6:])
    values = validate_config(raw).values
    params = count_parameters(model_dir) if family != "demo" else {}
    if family == "demo":
        from trainer.demo_model import demo_model_path

        params = count_parameters(demo_model_path())
    est = estimate(values, params, device="cuda" if cuda else "cpu")
    measured = got["gpu_peak"] if cuda else got["peak"] - got["base"]
    return {
        "family": spec,
        "resolution": resolution,
        "params": {k: int(v) for k, v in params.items()},
        "measured_mb": round(measured / 2**20, 1),
        "estimate_mb": round(est.peak_bytes / 2**20, 1),
        "estimate_parts_mb": {k: round(v / 2**20, 2) for k, v in est.parts.items()},
        "error": round(est.peak_bytes / measured - 1, 3) if measured > 0 else None,
        "baseline_rss_mb": round(got["base"] / 2**20, 1),
        "peak_rss_mb": round(got["peak"] / 2**20, 1),
        "gb_scale_note": f"tiny model: {est.peak_bytes / GB:.3f} GB",
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--cuda", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="tunerdeck-estimate-") as tmp:
        models, work = Path(tmp) / "models", Path(tmp) / "work"
        models.mkdir()
        work.mkdir()
        # The demo model is generated before measuring, so no run counts its one-off VAE fit.
        subprocess.run(
            [sys.executable, "-m", "trainer.demo_model"],
            env={**os.environ, "TUNERDECK_HOME": str(work / "home")},
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        for spec in args.families.split(","):
            result = measure(spec, models, work, args.cuda)
            print(json.dumps(result), flush=True)
            results.append(result)
    name = "estimate_cuda.json" if args.cuda else "estimate.json"
    out = REPO / "bench" / "results" / name
    out.write_text(json.dumps({"steps": STEPS, "batch": BATCH, "runs": results}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
