"""Registry speed: evaluating every field after one changed value, and validating a config.

Goals: evaluation after one change < 1 ms, whole-config validation < 5 ms.
Run: .venv/bin/python bench/registry.py  (prints figures, writes bench/results/registry.json)
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.catalogue import ALL_FIELDS, FIELDS
from registry.evaluator import Evaluator, PlatformContext
from registry.validation import validate_config

RESULTS = Path(__file__).resolve().parent / "results" / "registry.json"
CTX = PlatformContext("cpu")
CONFIG = {
    "model_type": "full",
    "use_ema": True,
    "optimizer": "adamw",
    "lr_scheduler": "cosine",
    "lr_warmup_steps": 100,
    "learning_rate": 1e-5,
    "train_text_encoder": True,
    "report_to": "tensorboard",
    "validation_prompt": "a cat\na dog\na house",
    "datasets": [
        {"path": "/data/cats", "repeats": 3, "caption_prefix": "ohwx"},
        {"path": "/data/dogs", "bucketing": False, "crop": "random", "random_flip": True},
    ],
}


def median_ms(fn: Callable[[], object], repeats: int = 2000) -> float:
    for _ in range(50):  # warm caches
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    evaluator = Evaluator(CTX)
    config = dict(CONFIG)
    states = evaluator.evaluate(config)
    flip = iter(["lion", "adamw"] * 10**6)

    def one_change_incremental() -> None:
        config["optimizer"] = next(flip)  # the field with the most dependents
        evaluator.update(config, "optimizer", states)

    def one_change_full() -> None:
        config["optimizer"] = next(flip)
        evaluator.evaluate(config)

    def one_change_model_type() -> None:
        config["model_type"] = "lora" if config["model_type"] == "full" else "full"
        evaluator.update(config, "model_type", states)

    figures = {
        "fields": len(ALL_FIELDS),
        "config_fields": len(FIELDS),
        "evaluate_one_change_incremental_ms": median_ms(one_change_incremental),
        "evaluate_one_change_incremental_model_type_ms": median_ms(one_change_model_type),
        "evaluate_all_fields_full_ms": median_ms(one_change_full),
        "validate_whole_config_ms": median_ms(lambda: validate_config(CONFIG, CTX), 1000),
        "goal_evaluate_ms": 1.0,
        "goal_validate_ms": 5.0,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
    }
    for key, value in figures.items():
        print(f"{key:50s} {value:.4f}" if isinstance(value, float) else f"{key:50s} {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
