"""Page speed against NiceGUI's own floor: the app's pages and a hello-world NiceGUI page (one
label) served side by side on this machine, loaded in turn by one headless Chromium.

For '/', '/monitor/<a 100k-step run>' and '/runs' (with 50 runs in history) it prints the time
until the page is interactive (socket handshake done and the page's first control on screen):
the first load after server start and the median of warm loads with their spread, each next to
the hello-world page's figure and as a ratio; and, for the warm loads, the median time the
browser's main thread spent in tasks for them (CDP TaskDuration: without the waits for the
network and the server, though still stretched when other processes take the cores). It also
prints the size of each page's first response, and the server's RSS after 10 and after 20 full
page loads (socket included).

Absolute times move with the machine's load (printed: load average, cores); the ratios to the
hello-world page, measured in the same minutes, are the figures to compare.

Run: .venv/bin/python bench/ui_pages.py [--warm 9] [--label before]
(prints figures, writes bench/results/ui_pages[_LABEL].json). Internal role: --hello PORT.
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
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HISTORY_RUNS = 50
LONG_RUN_STEPS = 100_000

# What "interactive" means per page: the socket handshake is done and the page's first
# control is laid out (offsetParent is null while an element is hidden or not yet mounted).
READY_JS = {
    "hello": "document.querySelector('.td-hello')",
    "/": 'document.querySelector(\'[data-field="model_family"] .q-field, [data-field="model_family"] input\')',
    "monitor": "document.querySelector('canvas')",  # the loss chart drawn
    "/runs": "document.querySelector('.q-table tbody tr')",
}


def _ready_script(selector: str) -> str:
    return (
        f"const el = {selector}; return !!(window.did_handshake && el && el.offsetParent !== null);"
    )


# ---- the hello-world server --------------------------------------------------------------------
def run_hello(port: int) -> int:
    from nicegui import ui

    @ui.page("/")
    def hello() -> None:
        ui.label("Hello, world").classes("td-hello")

    ui.run(port=port, reload=False, show=False, show_welcome_message=False)
    return 0


# ---- history -------------------------------------------------------------------------------
def seed_history(home: Path) -> str:
    """50 finished runs (200 steps each) and one of 100k steps; returns the long run's id."""
    from state.run_records import RunRecord, RunRecordStore

    store = RunRecordStore(home / "run_records")
    now = time.time()
    long_id = ""
    for i in range(HISTORY_RUNS):
        steps = LONG_RUN_STEPS if i == HISTORY_RUNS - 1 else 200
        run_id = f"bench-{i:03d}"
        run_dir = home / "runs" / run_id
        run_dir.mkdir(parents=True)
        lines = []
        seq = 0
        for step in range(1, steps + 1):
            seq += 1
            loss = 1.0 / (1 + step * 0.001) + (0.3 if step % 997 == 0 else 0.0)
            data = {"step": step, "max_steps": steps, "epoch": 0, "loss": loss, "lr": 1e-4}
            lines.append(
                json.dumps(
                    {
                        "v": 1,
                        "run_id": run_id,
                        "seq": seq,
                        "ts": now - 3600 + step * 0.01,
                        "type": "progress",
                        "data": data,
                    }
                )
            )
        seq += 1
        lines.append(
            json.dumps(
                {
                    "v": 1,
                    "run_id": run_id,
                    "seq": seq,
                    "ts": now - 60,
                    "type": "lifecycle",
                    "data": {"state": "completed", "message": "done"},
                }
            )
        )
        (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
        store.save(
            RunRecord(
                id=run_id,
                state="completed",
                run_dir=str(run_dir),
                created_at=now - 7200 + i,
                started_at=now - 7200 + i,
                ended_at=now - 60 + i,
                step=steps,
                max_steps=steps,
                loss=1.0 / (1 + steps * 0.001),
                last_seq=seq,
                attempts=1,
                config={"max_train_steps": steps},
            )
        )
        if steps == LONG_RUN_STEPS:
            long_id = run_id
    return long_id


# ---- driving -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                r.read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = (
        os.environ.get("CHROME_BINARY_LOCATION") or shutil.which("chromium") or ""
    )
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def time_to_ready(
    driver: Any, url: str, selector: str, timeout: float = 60.0, busy: list[float] | None = None
) -> float:
    """Seconds until the page is interactive; with `busy`, also appends the time (ms) the
    renderer's main thread spent in tasks for the load: the browser's share of it."""
    script = _ready_script(selector)
    driver.get("about:blank")
    if busy is not None:  # restart the renderer's counters for this load
        driver.execute_cdp_cmd("Performance.disable", {})
        driver.execute_cdp_cmd("Performance.enable", {})
    start = time.perf_counter()
    driver.get(url)
    deadline = start + timeout
    while not driver.execute_script(script):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{url} never became interactive")
        time.sleep(0.005)
    took = time.perf_counter() - start
    if busy is not None:
        metrics = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
        busy.append(next(m["value"] for m in metrics if m["name"] == "TaskDuration") * 1000)
    print(f"  {url} {took:.3f} s", file=sys.stderr, flush=True)
    return took


def response_bytes(url: str) -> int:
    with urllib.request.urlopen(url, timeout=60) as r:
        return len(r.read())


def rss_mb(pid: int) -> float:
    """The server process's own RSS (not its children: unified mode warms the demo model in a
    child process that imports torch)."""
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def spread(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "median_s": round(statistics.median(values), 3),
        "min_s": round(values[0], 3),
        "max_s": round(values[-1], 3),
        "n": len(values),
    }


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm", type=int, default=9, help="warm loads per page (default 9)")
    parser.add_argument("--label", default="", help="suffix of the results file (before/after)")
    parser.add_argument(
        "--compare",
        default=None,
        help="another checkout of the project (e.g. an export of the last commit): its app is "
        "served too and its pages are timed in the same rounds, as 'base ...'",
    )
    parser.add_argument("--hello", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def _serve_app(cwd: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def _wait_for_ports(ports: list[int], home: Path) -> None:
    """Wait for the sockets without loading a page: the first loads are the cold ones."""
    for port in ports:
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no server on {port}; see {home}") from None
                time.sleep(0.05)


def _page_memory(
    driver: Any, pages: dict[str, tuple[str, str]], procs: list[subprocess.Popen], compare: bool
) -> dict[str, float]:
    """Memory under full page loads of '/' (the socket included), before any run is opened."""
    driver.get("about:blank")
    time.sleep(4)  # reconnect_timeout: the page above is let go
    rss = {"after_first_load": rss_mb(procs[0].pid)}
    for total in (10, 20):
        for _ in range(10):
            time_to_ready(driver, *pages["/"])
        driver.get("about:blank")
        time.sleep(5)
        rss[f"after_{total}_loads"] = rss_mb(procs[0].pid)
    if compare:
        for _ in range(10):
            time_to_ready(driver, *pages["base /"])
        driver.get("about:blank")
        time.sleep(5)
        rss["base_after_10_loads"] = rss_mb(procs[2].pid)
    return rss


def _page_figures(
    pages: dict[str, tuple[str, str]],
    hello_url: str,
    cold: dict[str, float],
    warm: dict[str, list[float]],
    busy: dict[str, list[float]],
) -> dict[str, dict[str, Any]]:
    hello_warm = statistics.median(warm["hello"])
    hello_busy = statistics.median(busy["hello"])
    figures_by_page: dict[str, dict[str, Any]] = {}
    for name in ("hello", *pages):
        url = hello_url if name == "hello" else pages[name][0]
        figures: dict[str, Any] = {
            "cold_s": round(cold[name], 3),
            "warm": spread(warm[name]),
            "first_response_bytes": response_bytes(url),
            "warm_main_thread_ms": round(statistics.median(busy[name])),
        }
        if name != "hello":
            figures["warm_ratio_to_hello"] = round(statistics.median(warm[name]) / hello_warm, 2)
            figures["main_thread_ratio_to_hello"] = round(
                statistics.median(busy[name]) / hello_busy, 2
            )
            figures["cold_ratio_to_hello"] = round(cold[name] / cold["hello"], 2)
        figures_by_page[name] = figures
    return figures_by_page


def _measure(
    args: argparse.Namespace,
    pages: dict[str, tuple[str, str]],
    hello_url: str,
    procs: list[subprocess.Popen],
    result: dict[str, Any],
) -> None:
    driver = browser()
    try:
        driver.get("data:text/html,<p>warm-up</p>")  # the renderer's own start is no page's cost
        cold = {
            "hello": time_to_ready(driver, hello_url, READY_JS["hello"]),
            "/": time_to_ready(driver, *pages["/"]),
        }
        if args.compare:
            cold["base /"] = time_to_ready(driver, *pages["base /"])
        rss = _page_memory(driver, pages, procs, bool(args.compare))
        for name in [n for n in pages if n not in cold]:
            cold[name] = time_to_ready(driver, *pages[name])
        warm: dict[str, list[float]] = {name: [] for name in ("hello", *pages)}
        busy: dict[str, list[float]] = {name: [] for name in ("hello", *pages)}
        for _ in range(args.warm):  # interleaved: each round sees the same machine load
            warm["hello"].append(
                time_to_ready(driver, hello_url, READY_JS["hello"], busy=busy["hello"])
            )
            for name, (url, selector) in pages.items():
                warm[name].append(time_to_ready(driver, url, selector, busy=busy[name]))
        driver.get("about:blank")
        time.sleep(5)
        rss["after_all_pages_incl_100k_run"] = rss_mb(procs[0].pid)
        rss["hello_server"] = rss_mb(procs[1].pid)
        result["pages"] = _page_figures(pages, hello_url, cold, warm, busy)
        result["server_rss_mb"] = rss
        result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        driver.quit()


def _report(result: dict[str, Any], label: str) -> None:
    for name, figures in result["pages"].items():
        warm_f = figures["warm"]
        line = (
            f"{name:10s} cold {figures['cold_s']:.3f} s   warm median {warm_f['median_s']:.3f} s "
            f"[{warm_f['min_s']:.3f}-{warm_f['max_s']:.3f}, n={warm_f['n']}]   "
            f"first response {figures['first_response_bytes'] / 1024:.1f} KiB   "
            f"main thread {figures['warm_main_thread_ms']} ms"
        )
        if name != "hello":
            line += (
                f"   x hello: warm {figures['warm_ratio_to_hello']}, "
                f"cold {figures['cold_ratio_to_hello']}, "
                f"main thread {figures['main_thread_ratio_to_hello']}"
            )
        print(line)
    print(f"server RSS MB: {result['server_rss_mb']}")
    print(
        f"load average {result['load_avg_start']} -> {result['load_avg_end']} on {result['cores']} cores"
    )
    suffix = f"_{label}" if label else ""
    out = ROOT / "bench" / "results" / f"ui_pages{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


def main() -> int:
    args = _parse_args()
    if args.hello is not None:
        return run_hello(args.hello)

    home = Path(tempfile.mkdtemp(prefix="tunerdeck-bench-pages-"))
    long_id = seed_history(home)
    env = {
        **os.environ,
        "TUNERDECK_HOME": str(home),
        "TUNERDECK_WEB_UI_CONFIG": str(home / "webui.json"),
    }
    app_port, hello_port = free_port(), free_port()
    procs = [
        _serve_app(ROOT, app_port, env, home / "app.log"),
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--hello", str(hello_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(home / "hello.log").open("wb"),
        ),
    ]
    app_url, hello_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{hello_port}/"
    pages = {
        "/": (f"{app_url}/", READY_JS["/"]),
        "monitor": (f"{app_url}/monitor/{long_id}", READY_JS["monitor"]),
        "/runs": (f"{app_url}/runs", READY_JS["/runs"]),
    }
    ports = [app_port, hello_port]
    if args.compare:
        base_home = home / "base"
        base_home.mkdir()
        seed_history(base_home)
        base_port = free_port()
        base_env = {
            **env,
            "TUNERDECK_HOME": str(base_home),
            "TUNERDECK_WEB_UI_CONFIG": str(base_home / "webui.json"),
        }
        procs.append(
            _serve_app(Path(args.compare).resolve(), base_port, base_env, home / "base.log")
        )
        ports.append(base_port)
        base_url = f"http://127.0.0.1:{base_port}"
        pages["base /"] = (f"{base_url}/", READY_JS["/"])
        pages["base monitor"] = (f"{base_url}/monitor/{long_id}", READY_JS["monitor"])
        pages["base /runs"] = (f"{base_url}/runs", READY_JS["/runs"])
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cores": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "history_runs": HISTORY_RUNS,
        "long_run_steps": LONG_RUN_STEPS,
    }
    try:
        _wait_for_ports(ports, home)
        _measure(args, pages, hello_url, procs, result)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if "pages" in result:  # on failure the logs stay for reading
            shutil.rmtree(home, ignore_errors=True)
    _report(result, args.label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
