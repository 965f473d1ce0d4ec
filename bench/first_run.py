"""A new user's first run: fresh data dir, the default config (model_family=demo, nothing
edited), Start. Measures, from the start request the run bar makes:
  first_stage_s       - the first stage event (what "starting" shows before step 1)
  first_validation_s  - the first validation image on disk (goal: < 30 s)
  completed_s         - the run completed (goal: < 60 s)
  starting_s          - the trainer's first event (its process and libraries are up)
  running_s           - the trainer reported "running" (model, data and caches ready)
It goes through the app's own run service (LocalRunService, the real `python -m trainer`),
so launch, callbacks and event handling are included; only the browser is not.
The machine's load average is recorded: on a shared 2-core machine figures are noisy.
Run: .venv/bin/python bench/first_run.py [--warm] (writes bench/results/first_run.json)
     --warm reuses one demo model for every round (the time of a second run).
     --click-after S starts the server's demo warm-up S seconds before the click (a new user
     reading the page first), as `python -m app` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


async def one_run(home: Path, click_after: float = 0.0) -> dict:
    os.environ["TUNERDECK_HOME"] = str(home)
    os.environ["TUNERDECK_WEB_UI_CONFIG"] = str(home / "webui.json")
    if click_after:  # as `python -m app` does at start: build the demo model in the background
        os.environ.pop("TUNERDECK_NO_DEMO_WARMUP", None)
        from app.services.demo_warmup import start_demo_warmup

        start_demo_warmup()
        await asyncio.sleep(click_after)  # the user reads the page, then clicks Start
    from app.services.event_bus import EventBus
    from app.services.run_supervisor import LocalRunService
    from registry.evaluator import PlatformContext
    from state.config_store import ConfigStore
    from state.run_records import RunRecordStore
    from state.web_ui_state import WebUIStateStore

    service = LocalRunService(
        EventBus(),
        RunRecordStore(),
        ConfigStore(),
        WebUIStateStore(),
        PlatformContext(device="cpu", packages=frozenset()),
    )
    had_model = (home / "models").exists()
    started, wall0 = time.monotonic(), time.time()
    run = await service.start_run(config={}, config_name=None)
    out: dict = {"demo_model_cached": had_model, "click_after_s": click_after}
    try:
        while time.monotonic() - started < 600:
            info = await service.get_run(run.id)
            if info.state in ("completed", "failed", "stopped"):
                out["state"] = info.state
                out["steps"] = info.step
                break
            await asyncio.sleep(0.5)
        # Times from the trainer's own event stamps (same clock as wall0), not from polling.
        events = await service.events_after(run.id, 0)
        seen: list[str] = []
        for event in events:
            at = round(event.ts - wall0, 1)
            if event.type == "stage":
                out.setdefault("first_stage_s", at)
                if event.data["name"] not in seen:
                    seen.append(event.data["name"])
            elif event.type == "validation":
                out.setdefault("first_validation_s", at)
            elif event.type == "lifecycle" and event.data["state"] == "starting":
                out.setdefault("starting_s", at)
            elif event.type == "lifecycle" and event.data["state"] == "running":
                out["running_s"] = at
            elif event.type == "lifecycle" and event.data["state"] in ("completed", "failed"):
                out["completed_s"] = at
        out["stages"] = seen
        detail = await service.get_detail(run.id, include_progress=False)
        out["validation_images"] = sum(len(v.images) for v in detail.validations)
        if info.state == "failed":
            out["log_tail"] = detail.run.log_tail[-10:]
    finally:
        await service.shutdown()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warm", action="store_true")
    parser.add_argument(
        "--click-after",
        type=float,
        default=0.0,
        help="start the server's demo warm-up, wait this long, then click Start",
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="tunerdeck-first-run-") as tmp:
        shared = Path(tmp) / "models"
        for i in range(args.rounds + (1 if args.warm else 0)):
            home = Path(tmp) / f"home{i}"
            home.mkdir()
            if args.warm:
                shared.mkdir(exist_ok=True)
                (home / "models").symlink_to(shared, target_is_directory=True)
            load = os.getloadavg()[0]
            result = asyncio.run(one_run(home, args.click_after))
            result["load_avg_1m_before"] = round(load, 2)
            if args.warm and i == 0:
                continue  # the round that generated the shared demo model
            results.append(result)
            print(json.dumps(result), flush=True)
    name = "first_run_warm" if args.warm else "first_run"
    if args.click_after:
        name += f"_click_after_{args.click_after:g}s"
    out = REPO / "bench" / "results" / f"{name}.json"
    out.write_text(json.dumps({"runs": results, "cpus": os.cpu_count()}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
