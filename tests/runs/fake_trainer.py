"""A stand-in for `python -m trainer` that follows its process contract (events.jsonl, callbacks,
checkpoints, SIGTERM = checkpoint + stopped) without torch. Used by the events bench and to
test the supervisor's own logic quickly; the acceptance tests run the real trainer.

usage: python fake_trainer.py --config RUN.toml [--resume_from_checkpoint latest]
       [--step_s 0.05] [--events_per_step 1]
env: FAKE_STEP_S (seconds a step), FAKE_STUCK_ON_STOP=1 (hang after SIGTERM, for Kill)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import tomllib
import urllib.request
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--resume_from_checkpoint", default="")
    parser.add_argument(
        "--step_s", type=float, default=float(os.environ.get("FAKE_STEP_S", "0.05"))
    )
    args = parser.parse_args()
    cfg = tomllib.loads(Path(args.config).read_text())
    run_dir = Path(cfg["output_dir"])
    max_steps = int(cfg.get("max_train_steps", 10))
    ckpt_every = int(cfg.get("checkpointing_steps", 0))
    run_id = os.environ["TUNERDECK_RUN_ID"]
    url, token = (
        os.environ.get("TUNERDECK_CALLBACK_URL"),
        os.environ.get("TUNERDECK_CALLBACK_TOKEN"),
    )
    events_path = run_dir / "events.jsonl"
    seq = 0
    if events_path.exists():
        for line in events_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                seq = max(seq, json.loads(line)["seq"])
    out = events_path.open("a")
    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("requested", True))
    stuck_on_stop = bool(os.environ.get("FAKE_STUCK_ON_STOP"))  # a trainer that hangs stopping

    def emit(type_: str, data: dict) -> None:
        nonlocal seq
        seq += 1
        event = {
            "v": 1,
            "run_id": run_id,
            "seq": seq,
            "ts": time.time(),
            "type": type_,
            "data": data,
        }
        out.write(json.dumps(event) + "\n")
        out.flush()
        if url:
            req = urllib.request.Request(
                url, json.dumps({"run_id": run_id, "events": [event]}).encode(), method="POST"
            )
            req.add_header("Content-Type", "application/json")
            req.add_header("Authorization", f"Bearer {token}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(req, timeout=2).read()

    def checkpoint(step: int) -> None:
        path = run_dir / "checkpoints" / f"checkpoint-{step}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "state.json").write_text(json.dumps({"step": step}))
        emit("checkpoint", {"step": step, "path": str(path)})

    step = 0
    if args.resume_from_checkpoint:
        found = sorted(
            int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("checkpoint-*")
        )
        step = found[-1] if found else 0
    emit("lifecycle", {"state": "starting", "message": "fake"})
    print(f"fake trainer starting at step {step}", flush=True)
    emit("lifecycle", {"state": "running", "message": f"training {max_steps} steps"})
    while step < max_steps:
        time.sleep(args.step_s)
        step += 1
        emit(
            "progress",
            {
                "step": step,
                "max_steps": max_steps,
                "epoch": 0,
                "loss": 1.0 / step,
                "lr": 1e-4,
                "it_per_s": 1 / args.step_s,
                "eta_s": (max_steps - step) * args.step_s,
            },
        )
        print(f"step {step}", flush=True)
        if ckpt_every and step % ckpt_every == 0:
            checkpoint(step)
        if stop["requested"] and stuck_on_stop:
            emit("lifecycle", {"state": "stopping", "message": "SIGTERM"})
            while True:
                time.sleep(1)
        if stop["requested"]:
            emit("lifecycle", {"state": "stopping", "message": "SIGTERM"})
            checkpoint(step)
            emit("lifecycle", {"state": "stopped", "message": f"stopped at step {step}"})
            return 0
    checkpoint(step)
    emit("lifecycle", {"state": "completed", "message": f"trained {step} steps"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
