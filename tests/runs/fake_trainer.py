"""A stand-in for `python -m trainer` that follows its process contract (events.jsonl, callbacks,
checkpoints, SIGTERM = checkpoint + stopped) without torch. Events go through the trainer's
own EventSink (torch-free), so their numbering and delivery are the real ones. Used by the events bench and to
test the supervisor's own logic quickly; the acceptance tests run the real trainer.

usage: python fake_trainer.py --config RUN.toml [--resume_from_checkpoint latest]
       [--step_s 0.05] [--events_per_step 1]
env: FAKE_STEP_S (seconds a step), FAKE_STAGE_S (seconds each start-up stage event waits),
     FAKE_HANG_AT_STEP (stop emitting after that step until SIGTERM), FAKE_STUCK_ON_STOP=1 (hang after SIGTERM, for Kill)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from trainer.events import EventSink


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
    eval_every = int(cfg.get("eval_steps", 0))  # eval losses: 2 / step, falling
    run_id = os.environ["TUNERDECK_RUN_ID"]
    url, token = (
        os.environ.get("TUNERDECK_CALLBACK_URL"),
        os.environ.get("TUNERDECK_CALLBACK_TOKEN"),
    )
    sink = EventSink(run_dir, run_id, url, token, flush_interval_s=0.05)
    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("requested", True))
    stuck_on_stop = bool(os.environ.get("FAKE_STUCK_ON_STOP"))  # a trainer that hangs stopping

    def emit(type_: str, data: dict) -> None:
        sink.emit(type_, data)

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
    stage_s = float(os.environ.get("FAKE_STAGE_S", "0"))  # the "starting" phase's stages
    if stage_s:
        sink.stage("loading model")
        time.sleep(stage_s)  # simulated work: the behaviour under test
        for done in range(5):
            sink.stage("caching latents", done, 4)
            time.sleep(stage_s)  # simulated work
    emit("lifecycle", {"state": "running", "message": f"training {max_steps} steps"})
    while step < max_steps:
        time.sleep(args.step_s)  # simulated work: a training step takes step_s
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
        if eval_every and step % eval_every == 0:
            emit("eval", {"step": step, "loss": 2.0 / step, "images": 2})
        if step == int(os.environ.get("FAKE_HANG_AT_STEP", "0")):  # a trainer that stops emitting
            print("fake trainer: stuck in a collective op", flush=True)
            while not stop["requested"]:
                time.sleep(0.1)  # the simulated hang itself: idle until SIGTERM
        if ckpt_every and step % ckpt_every == 0:
            checkpoint(step)
        if stop["requested"] and stuck_on_stop:
            emit("lifecycle", {"state": "stopping", "message": "SIGTERM"})
            while True:
                time.sleep(1)  # simulated: a trainer that ignores its stop request
        if stop["requested"]:
            emit("lifecycle", {"state": "stopping", "message": "SIGTERM"})
            checkpoint(step)
            emit("lifecycle", {"state": "stopped", "message": f"stopped at step {step}"})
            sink.close()
            return 0
    checkpoint(step)
    emit("lifecycle", {"state": "completed", "message": f"trained {step} steps"})
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
