"""The callback bus under load: synthetic events at 100, 1,000 and 5,000 events/s for 20 s
each, watched by 1 and 5 real browser clients (headless chromium on /monitor/<run>).

For every phase it prints and saves: events lost (emitted but never shown on a page; goal
0), latency from emit to the page's DOM p50/p99 (goal p99 < 250 ms at 1,000/s), the server's
CPU share (of one core), the browsers' CPU share, and the server's memory before and after all
phases (goal: no growth).

The events come from a synthetic trainer: the real trainer's EventSink (events.jsonl +
batched POSTs to /callbacks with the run's token), launched by the real run service.

Run: .venv/bin/python bench/events.py [--duration 20] [--rates 100,1000,5000] [--clients 1,5]
(writes bench/results/events.json). Roles used internally: --serve PORT, --source.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# A MutationObserver on the monitor's hidden "events-seen" label ("<last seq> <count>")
# records when each update reached the DOM, in the browser's clock (= this machine's).
OBSERVER_JS = """
const target = document.querySelector('.td-events-seen');
if (!target) return false;
window.__samples = [];
const obs = new MutationObserver(() => window.__samples.push([Date.now() / 1000, target.textContent]));
obs.observe(target, {childList: true, characterData: true, subtree: true});
return true;
"""


# ---- role 1: the synthetic trainer -----------------------------------------------------------
def run_source() -> int:
    """Started by the run service instead of `python -m trainer`: waits for RUN_DIR/go, then
    emits `max_train_steps` progress events at the rate in run_name ("rate=N")."""
    from trainer.events import EventSink

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    args, _ = parser.parse_known_args()
    cfg = tomllib.loads(Path(args.config).read_text())
    run_dir = Path(cfg["output_dir"])
    total = int(cfg["max_train_steps"])
    rate = float(cfg["run_name"].split("=")[1])
    sink = EventSink(
        run_dir,
        os.environ["TUNERDECK_RUN_ID"],
        os.environ.get("TUNERDECK_CALLBACK_URL"),
        os.environ.get("TUNERDECK_CALLBACK_TOKEN"),
        flush_interval_s=0.02,
        batch_size=500,
    )
    while not (run_dir / "go").exists():
        time.sleep(0.05)
    sink.lifecycle("running", f"synthetic: {total} events at {rate:g}/s")
    started = time.perf_counter()
    for i in range(1, total + 1):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sink.emit(
            "progress",
            {
                "step": i,
                "max_steps": total,
                "epoch": 0,
                "loss": 1.0 / i,
                "lr": 1e-4,
                "it_per_s": rate,
                "eta_s": 0.0,
            },
        )
    sink.lifecycle("completed", "synthetic run done")
    sink.close(timeout_s=30)
    return 0


# ---- role 2: the server ----------------------------------------------------------------------
def run_server(port: int) -> int:
    from nicegui import ui

    from app.main import build_app, build_parser
    from app.services.container import get_services

    args = build_parser().parse_args(["--port", str(port)])
    kwargs = build_app(args)
    service = get_services().run_service
    service.command_builder = lambda _eff, run_dir, _resume: [
        sys.executable,
        str(Path(__file__).resolve()),
        "--source",
        "--config",
        str(run_dir / "run.toml"),
    ]
    profile_path = os.environ.get("TUNERDECK_BENCH_PROFILE")
    if not profile_path:
        ui.run(**kwargs)
        return 0
    import cProfile

    from nicegui import app

    profiler = cProfile.Profile()
    app.on_shutdown(lambda: profiler.dump_stats(profile_path))
    profiler.enable()
    ui.run(**kwargs)
    return 0


# ---- role 3: the driver ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: dict | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    return webdriver.Chrome(
        service=Service(executable_path=shutil.which("chromedriver")), options=options
    )


def _wait_state(base: str, run_id: str, states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _http("GET", f"{base}/api/runs/{run_id}")
        if run["state"] in states:
            return run
        time.sleep(0.2)
    raise RuntimeError(f"run {run_id} never reached {states}")


def _browsers_cpu(drivers: list[Any]) -> float:
    """CPU seconds so far of every chromium process behind the drivers (they share the
    machine's cores with the server: on a small machine they set the latency floor)."""
    import psutil

    total = 0.0
    for driver in drivers:
        try:
            root = psutil.Process(driver.service.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _phase(
    base: str, drivers: list[Any], server: Any, rate: int, duration: float
) -> dict[str, Any]:
    import psutil

    total = int(rate * duration)
    run = _http(
        "POST",
        f"{base}/api/runs",
        {"config": {"max_train_steps": total, "run_name": f"rate={rate}"}},
    )
    run_id, run_dir = run["id"], Path(run["run_dir"])
    _wait_state(base, run_id, {"starting", "running"})
    for driver in drivers:
        driver.get(f"{base}/monitor/{run_id}")
    time.sleep(2.0)
    for driver in drivers:
        if not driver.execute_script(OBSERVER_JS):
            raise RuntimeError("the monitor page has no events-seen element")
    proc = psutil.Process(server.pid)
    cpu0, t0 = proc.cpu_times(), time.monotonic()
    browsers0 = _browsers_cpu(drivers)
    (run_dir / "go").write_text("go")
    time.sleep(duration)
    # Let the tail arrive: until every page saw the last seq, or 10 s.
    deadline = time.monotonic() + 10
    samples: list[list[list[Any]]] = []
    while time.monotonic() < deadline:
        samples = [d.execute_script("return window.__samples") or [] for d in drivers]
        if all(s and int(s[-1][1].split()[0]) >= total for s in samples):
            break
        time.sleep(0.25)
    cpu1, t1 = proc.cpu_times(), time.monotonic()
    cpu_share = ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / (t1 - t0)
    browsers_share = (_browsers_cpu(drivers) - browsers0) / (t1 - t0)
    emitted = {}
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        emitted[event["seq"]] = event["ts"]
    latencies: list[float] = []
    lost_per_client = []
    for client_samples in samples:
        seen_count = int(client_samples[-1][1].split()[1]) if client_samples else 0
        lost_per_client.append(len(emitted) - seen_count)
        # Each seq is on the page from the first update whose last seq reaches it.
        pos = 0
        for arrived, text in client_samples:
            last = int(text.split()[0])
            while pos < len(emitted) and pos + 1 <= last:
                pos += 1
                latencies.append(arrived - emitted[pos])
    _wait_state(base, run_id, {"completed", "failed", "stopped"}, timeout=60)
    latencies.sort()
    return {
        "rate": rate,
        "clients": len(drivers),
        "duration_s": duration,
        "emitted": len(emitted),
        "lost_max_per_client": max(lost_per_client),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)
        if latencies
        else None,
        "server_cpu_share": round(cpu_share, 3),
        "browsers_cpu_share": round(browsers_share, 3),
        "server_rss_mb_after_phase": round(proc.memory_info().rss / 2**20, 1),
    }


def run_driver(args: argparse.Namespace) -> int:
    import psutil

    rates = [int(r) for r in args.rates.split(",")]
    client_counts = [int(c) for c in args.clients.split(",")]
    home = Path(tempfile.mkdtemp(prefix="tunerdeck-bench-events-"))
    env = {
        **os.environ,
        "TUNERDECK_HOME": str(home),
        "TUNERDECK_WEB_UI_CONFIG": str(home / "webui.json"),
    }
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)],
        env=env,
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=open(home / "server.log", "wb"),  # noqa: SIM115
    )
    drivers: list[Any] = []
    results: dict[str, Any] = {"phases": []}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _http("GET", f"{base}/api/runs")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"server did not start; see {home / 'server.log'}") from None
                time.sleep(0.3)
        drivers = [_browser() for _ in range(max(client_counts))]
        for d in drivers:
            d.get(f"{base}/runs")  # warm up the page assets
        time.sleep(2)
        rss_before = psutil.Process(server.pid).memory_info().rss
        for clients in client_counts:
            for rate in rates:
                phase = _phase(base, drivers[:clients], server, rate, args.duration)
                print(json.dumps(phase), flush=True)
                results["phases"].append(phase)
        for d in drivers:
            d.get(f"{base}/runs")
        time.sleep(5)
        rss_after = psutil.Process(server.pid).memory_info().rss
        results["server_rss_mb_before"] = round(rss_before / 2**20, 1)
        results["server_rss_mb_after"] = round(rss_after / 2**20, 1)
        results["command"] = " ".join(sys.argv)
        print(
            f"server RSS before {results['server_rss_mb_before']} MB, after {results['server_rss_mb_after']} MB"
        )
    finally:
        for d in drivers:
            d.quit()
        server.terminate()
        server.wait(timeout=20)
    out = REPO / "bench" / "results" / "events.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds per phase (default 20)"
    )
    parser.add_argument("--rates", default="100,1000,5000")
    parser.add_argument("--clients", default="1,5")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--source", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.source:
        return run_source()
    if args.serve is not None:
        return run_server(args.serve)
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
