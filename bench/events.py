"""Event delivery to the Monitor: synthetic events at 100, 1,000 and 5,000 events/s for 20 s
each, watched by 1 and 5 real browser clients (headless chromium on /monitor/<run>).

Measured from the outside, with nothing in the product for it: each browser's DevTools
performance log records every websocket frame the page receives and when. A progress event
counts as delivered to a client at the first frame that shows its step or a later one (the
header's "step N/M": the page shows the newest step, so one frame covers many events).

For every phase it prints and saves: events lost (never covered on a page; goal 0), latency
from the trainer's emit to the frame reaching the browser, p50/p99 (goals: p50 < 50 ms at
<= 1,000/s, p99 < 250 ms at 5,000/s x 5 clients), chart redraws per second (goal: a few),
whether the last chart redraw reached the last step, the server's and the browsers' CPU
share (of one core), the load average, and the server's memory before and after all phases.

The events come from a synthetic trainer: the real trainer's EventSink (events.jsonl +
batched POSTs to /callbacks with the run's token, at the real trainer's default interval;
--trainer-flush S compares other intervals), launched by the real run service.

--browsers B makes at most B clients real browsers and the others page sockets without a
browser (bench/socket_client.py): the server does the same work for them, and on a 2-core
machine five headless browsers otherwise take most of the cores the server needs (users'
browsers run on their own machines). The browsers' own CPU share is printed per phase.

Run: .venv/bin/python bench/events.py [--duration 20] [--rates 100,1000,5000] [--clients 1,5]
[--trainer-flush S] [--browsers B] [--label L] (writes bench/results/events[_L].json). Roles used internally: --serve PORT,
--source. TUNERDECK_BENCH_PROFILE=FILE profiles the server (cProfile) into FILE.
"""

from __future__ import annotations

import argparse
import collections
import inspect
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

from page_frames import CHART_WAIT_S, client_figures, steps_shown
from socket_client import SocketClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FLUSH_ENV = "TUNERDECK_BENCH_TRAINER_FLUSH_S"


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
    # The real trainer's batching unless --trainer-flush says otherwise (driver -> env).
    flush = os.environ.get(FLUSH_ENV)
    sink = EventSink(
        run_dir,
        os.environ["TUNERDECK_RUN_ID"],
        os.environ.get("TUNERDECK_CALLBACK_URL"),
        os.environ.get("TUNERDECK_CALLBACK_TOKEN"),
        flush_interval_s=float(flush) if flush else _real_flush(),
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


def _real_flush() -> float:
    """The real trainer's send interval (EventSink's default)."""
    from trainer.events import EventSink

    return float(inspect.signature(EventSink).parameters["flush_interval_s"].default)


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
    sample_path = os.environ.get("TUNERDECK_BENCH_SAMPLE")
    if profile_path:  # exact call counts, but it inflates small functions several times over
        import cProfile

        from nicegui import app

        profiler = cProfile.Profile()
        app.on_shutdown(lambda: profiler.dump_stats(profile_path))
        profiler.enable()
    elif sample_path:
        _sample_main_thread(Path(sample_path))
    ui.run(**kwargs)
    return 0


def _sample_main_thread(out: Path, every_s: float = 0.002) -> None:
    """A sampling profile of the event loop's thread (little distortion, unlike cProfile):
    every `every_s` the innermost app/NiceGUI frame ("self") and every function on the stack
    ("inclusive") are counted; written as JSON at shutdown, shares of all samples."""
    import threading

    from nicegui import app

    main = threading.main_thread().ident or 0
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    taken = [0]
    stop = threading.Event()

    def name(frame: Any) -> str:
        code = frame.f_code
        path = code.co_filename
        short = path.split("site-packages/")[-1] if "site-packages/" in path else path
        return f"{short.replace(str(REPO) + '/', '')}:{code.co_name}"

    def loop() -> None:
        while not stop.wait(every_s):
            frame = sys._current_frames().get(main)
            if frame is None:
                continue
            taken[0] += 1
            own[name(frame)] += 1
            seen = set()
            while frame is not None:
                seen.add(name(frame))
                frame = frame.f_back
            inclusive.update(seen)

    def dump() -> None:
        stop.set()
        n = max(1, taken[0])
        top = {
            "samples": taken[0],
            "self": {k: round(v / n, 4) for k, v in own.most_common(60)},
            "inclusive": {k: round(v / n, 4) for k, v in inclusive.most_common(120)},
        }
        out.write_text(json.dumps(top, indent=1) + "\n")

    threading.Thread(target=loop, name="bench-sampler", daemon=True).start()
    app.on_shutdown(dump)


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
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.add_experimental_option(
        "perfLoggingPrefs", {"enableNetwork": True, "enablePage": False}
    )
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
        if isinstance(driver, SocketClient):
            continue  # runs in this process, not beside the server
        try:
            root = psutil.Process(driver.service.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _frames(driver: Any) -> list[tuple[float, str]]:
    """(receive time, payload) of the websocket frames the page got since the last call."""
    if isinstance(driver, SocketClient):
        return driver.frames()
    frames = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.webSocketFrameReceived":
            params = message["params"]
            frames.append((params["timestamp"], params["response"]["payloadData"]))
    return frames


def _emitted(run_dir: Path) -> dict[int, float]:
    """step -> when the synthetic trainer emitted it (wall clock), from the run's events file."""
    emitted = {}
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "progress":
            emitted[event["data"]["step"]] = event["ts"]
    return emitted


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
        _frames(driver)  # drop what the page load brought
    frames: list[list[tuple[float, str]]] = [[] for _ in drivers]
    load_start = os.getloadavg()
    proc = psutil.Process(server.pid)
    cpu0, t0 = proc.cpu_times(), time.monotonic()
    browsers0 = _browsers_cpu(drivers)
    (run_dir / "go").write_text("go")
    # Collect until every page showed the last step (or 10 s after the phase's end); the logs
    # are drained as they come so chromedriver holds little.
    deadline = time.monotonic() + duration + 10
    while time.monotonic() < deadline:
        time.sleep(1.0)
        for i, driver in enumerate(drivers):
            frames[i].extend(_frames(driver))
        if all((s := steps_shown(f)) and s[-1][1] >= total for f in frames):
            break
    time.sleep(CHART_WAIT_S)  # the charts' last (throttled) redraw
    for i, driver in enumerate(drivers):
        frames[i].extend(_frames(driver))
    cpu1, t1 = proc.cpu_times(), time.monotonic()
    cpu_share = ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / (t1 - t0)
    browsers_share = (_browsers_cpu(drivers) - browsers0) / (t1 - t0)
    got = client_figures(frames, _emitted(run_dir), total, t1 - t0)
    _wait_state(base, run_id, {"completed", "failed", "stopped"}, timeout=60)
    latencies = sorted(got.latencies)
    return {
        "rate": rate,
        "clients": len(drivers),
        "browsers": sum(not isinstance(d, SocketClient) for d in drivers),
        "duration_s": duration,
        "emitted": got.emitted,
        "lost_max_per_client": max(got.lost_per_client),
        "step_went_backwards": got.backwards,
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_min_ms": round(latencies[0] * 1000, 1) if latencies else None,
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)
        if latencies
        else None,
        "step_updates_per_s_mean": round(statistics.mean(got.step_frames), 1),
        "chart_redraws_per_s_max": max(got.redraws_max),
        "chart_redraws_per_s_mean": round(max(got.redraws_mean), 2),
        "chart_last_step_min": min((t for t in got.chart_tail if t is not None), default=None),
        "server_cpu_share": round(cpu_share, 3),
        "browsers_cpu_share": round(browsers_share, 3),
        "server_rss_mb_after_phase": round(proc.memory_info().rss / 2**20, 1),
        "load_avg_start": [round(x, 2) for x in load_start],
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
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
    if args.trainer_flush is not None:
        env[FLUSH_ENV] = str(args.trainer_flush)
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
    results: dict[str, Any] = {"phases": [], "trainer_flush_s": args.trainer_flush or _real_flush()}
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
        wanted = max(client_counts)
        browsers = min(wanted, args.browsers if args.browsers is not None else wanted)
        drivers = [_browser() for _ in range(browsers)]
        drivers += [SocketClient() for _ in range(wanted - browsers)]
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
    out = REPO / "bench" / "results" / f"events{'_' + args.label if args.label else ''}.json"
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
    parser.add_argument(
        "--trainer-flush",
        type=float,
        default=None,
        help="the synthetic trainer's send interval in s (default: the real trainer's)",
    )
    parser.add_argument(
        "--browsers",
        type=int,
        default=None,
        help="real browsers at most (default: every client); the other clients are page "
        "sockets without a browser (bench/socket_client.py)",
    )
    parser.add_argument("--label", default="", help="writes bench/results/events_LABEL.json")
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
