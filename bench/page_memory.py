"""Server memory under plain page loads that never open the websocket (a crawler, a script, a
browser tab closed before the page finished loading).

Starts `python -m app` on a private data dir, reads its RSS, GETs a page N times (no
websocket), waits for the server to settle, and reads the RSS again.

Run: .venv/bin/python bench/page_memory.py [--loads 1000] [--path /] [--settle 20]
(prints figures, writes bench/results/page_memory.json)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=1000)
    parser.add_argument("--path", default="/")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to wait after")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="tunerdeck-pagemem-"))
    port = free_port()
    env = {
        **os.environ,
        "TUNERDECK_HOME": str(home),
        "TUNERDECK_WEB_UI_CONFIG": str(home / "webui.json"),
    }
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get(args.path)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.2)
            for _ in range(3):  # warm up: imports, caches, first page build
                client.get(args.path)
            time.sleep(2)
            before = rss_mb(server.pid)
            peak = before
            start = time.perf_counter()
            for i in range(args.loads):
                response = client.get(args.path)
                response.raise_for_status()
                if i % 50 == 0:
                    peak = max(peak, rss_mb(server.pid))
            elapsed = time.perf_counter() - start
            after_loads = rss_mb(server.pid)
            peak = max(peak, after_loads)
            time.sleep(args.settle)
            after = rss_mb(server.pid)
        result = {
            "path": args.path,
            "loads": args.loads,
            "seconds": round(elapsed, 1),
            "rss_before_mb": round(before, 1),
            "rss_peak_mb": round(peak, 1),
            "rss_right_after_mb": round(after_loads, 1),
            "rss_after_settle_mb": round(after, 1),
            "settle_s": args.settle,
            "growth_mb": round(after - before, 1),
        }
        print(json.dumps(result, indent=1))
        if not args.no_write:
            out = ROOT / "bench" / "results" / "page_memory.json"
            out.write_text(json.dumps(result, indent=1) + "\n")
        return 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
