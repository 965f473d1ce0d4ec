"""Server-side delivery latency of run events to a page: from publishing an event on the bus
to the page's update handler running with it (app.pages.live_updates), at several rates, with
the delivery spacing of before (a fixed 150 ms) and now (25 ms, growing with a slow handler).

No browser and no trainer process: it isolates the server's own share of the latency that
bench/events.py measures end to end (which on a loaded 2-core machine is mostly the
browsers' and the synthetic trainer's wait for a core). Events arrive as the callbacks route
delivers them: in batches every 20 ms.

Run: .venv/bin/python bench/live_latency.py [--duration 5] [--rates 100,1000,5000]
(prints figures, writes bench/results/live_latency.json)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def measure(rate: int, duration: float, interval: float, handler_ms: float) -> dict:
    from nicegui import ui
    from nicegui.testing.user_simulation import user_simulation

    from app.pages import live_updates
    from app.services.event_bus import EventBus
    from tunerdeck_common.events import Event

    bus = EventBus()
    latencies: list[float] = []
    runs: list[float] = []

    def handler(items: list) -> None:
        now = time.time()
        runs.append(now)
        latencies.extend(now - item.ts for item in items)
        if handler_ms:  # a page's own CPU work per update (labels, folding, the outbox)
            until = time.thread_time() + handler_ms / 1000
            while time.thread_time() < until:
                pass

    async with user_simulation() as user:

        @ui.page("/latency")
        def page() -> None:
            ui.label("latency")
            live_updates.LiveUpdates(
                bus, handler, interval=interval, max_interval=max(0.25, interval)
            )

        await user.open("/latency")
        total = int(rate * duration)
        batch_every = 0.02
        seq = 0
        started = time.monotonic()
        while seq < total:
            due = int((time.monotonic() - started) * rate)
            for _ in range(min(due, total) - seq):
                seq += 1
                bus.publish(
                    Event(
                        run_id="r",
                        seq=seq,
                        ts=time.time(),
                        type="progress",
                        data={"step": seq, "max_steps": total},
                    )
                )
            await asyncio.sleep(batch_every)
        await asyncio.sleep(1.0)
    latencies.sort()
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    return {
        "rate": rate,
        "interval_s": interval,
        "handler_ms": handler_ms,
        "delivered": len(latencies),
        "lost": total - len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "handler_runs_per_s": round(len(runs) / duration, 1),
        "min_gap_ms": round(min(gaps) * 1000, 1) if gaps else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rates", default="100,1000,5000")
    parser.add_argument("--handler-ms", type=float, default=2.0)
    args = parser.parse_args()
    from app.pages.live_updates import UPDATE_INTERVAL_S

    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "phases": [],
    }
    for interval, label in ((0.15, "before (fixed 150 ms)"), (UPDATE_INTERVAL_S, "now")):
        for rate in (int(r) for r in args.rates.split(",")):
            phase = asyncio.run(measure(rate, args.duration, interval, args.handler_ms))
            phase["spacing"] = label
            result["phases"].append(phase)
            print(json.dumps(phase), flush=True)
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out = ROOT / "bench" / "results" / "live_latency.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average {result['load_avg_start']} -> {result['load_avg_end']}; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
