"""Dataset speed on 10,000 small images: scan, cold thumbnails, a warm page of 100.

  scan_s             - `scan_dataset` with an empty probe cache (every file opened and checked)
  rescan_s           - the same scan again (probes reused: stat + captions only)
  thumbnails_cold_s  - every thumbnail made from nothing (renders + cache writes)
  page_list_ms       - list one page of 100 images (sizes and captions) from the folder
  page_serve_ms      - GET the 100 thumbnails of that page, cache warm (200s), the way a
                       browser loads a page: a real uvicorn server on loopback and 6 parallel
                       keep-alive connections (Chromium's limit per host over HTTP/1.1);
                       min / median / max over REPEATS loads; goal: median under 300 ms
  page_revalidate_ms - the same 100 GETs with If-None-Match (304s, what a reload costs)
  sequential_*_ms    - the same requests one after another through FastAPI's in-process
                       TestClient (no sockets): the figure earlier versions of this bench
                       printed, dominated by the TestClient's own cost per request
                       (floor_trivial_route_ms: 100 GETs of a route that returns one byte)
Run: .venv/bin/python bench/datasets.py [--images N]   (writes bench/results/datasets.json)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = ((128, 128), (192, 128), (128, 192), (160, 96), (96, 160), (256, 256))
REPEATS = 9
CONNECTIONS = 6


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


class ServerProcess:
    """The datasets routes under uvicorn in their own process (as the app serves them, and as
    a browser is another process), on a free loopback port the child binds (port 0) and
    prints."""

    def __init__(self, root: Path, cache: Path) -> None:
        self.args = [sys.executable, __file__, "--serve", str(root), str(cache)]

    def __enter__(self) -> str:
        import subprocess

        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def serve(root: Path, cache: Path) -> None:
    """Child side of ServerProcess: print the base URL, then serve until terminated."""
    import socket

    import uvicorn
    from fastapi import FastAPI

    from app.routes import datasets_api
    from app.services.datasets import DatasetService

    prefs = SimpleNamespace(prefs=SimpleNamespace(datasets_root=str(root)))
    app = FastAPI()
    app.state.services = SimpleNamespace(
        prefs=prefs, datasets=DatasetService(prefs, cache_dir=cache)
    )
    app.include_router(datasets_api.router)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


async def load_page(
    base: str, urls: list[str], etags: list[str] | None, repeats: int
) -> tuple[list[float], list[str]]:
    """Milliseconds to GET every URL over CONNECTIONS keep-alive connections, per repeat."""
    import httpx

    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    times: list[float] = []
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:
        await asyncio.gather(*(client.get(u) for u in urls[:CONNECTIONS]))  # open connections
        for _ in range(repeats):
            headers = [{"If-None-Match": e} for e in etags] if etags else [{} for _ in urls]
            t = time.perf_counter()
            responses = await asyncio.gather(
                *(client.get(u, headers=h) for u, h in zip(urls, headers, strict=True))
            )
            times.append((time.perf_counter() - t) * 1000)
            want = 304 if etags else 200
            assert all(r.status_code == want for r in responses), responses[0].text
            seen = [r.headers["etag"] for r in responses]
    return times, seen


def make_images(folder: Path, count: int) -> None:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True)
    for i in range(count):
        size = SIZES[i % len(SIZES)]
        img = Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
        ImageDraw.Draw(img).ellipse(
            (8, 8, size[0] - 8, size[1] - 8), fill=((i * 11) % 256, 40, 200)
        )
        img.save(folder / f"img_{i:05d}.png", compress_level=1)
        if i % 10:
            (folder / f"img_{i:05d}.txt").write_text(f"a shape number {i}\n")


def _time_scans_and_thumbnails(
    service: Any, entry: dict[str, Any], folder: Path, images_n: int, results: dict[str, object]
) -> None:
    from app.services.dataset_scan import scan_dataset

    t = time.perf_counter()
    scan = scan_dataset(entry, resolution=128, batch_size=4, cache=service.probes)
    results["scan_s"] = round(time.perf_counter() - t, 3)
    assert scan.readable_count == images_n, scan.summary()
    t = time.perf_counter()
    scan_dataset(entry, resolution=128, batch_size=4, cache=service.probes)
    results["rescan_s"] = round(time.perf_counter() - t, 3)

    images = sorted(folder.glob("*.png"))
    t = time.perf_counter()
    for image in images:
        service.thumbnails.get(image)
    results["thumbnails_cold_s"] = round(time.perf_counter() - t, 3)
    results["thumbnail_cache_mb"] = round(service.thumbnails.size_on_disk() / 2**20, 1)


def _time_serving(
    service: Any,
    prefs: Any,
    root: Path,
    folder: Path,
    tmp_path: Path,
    images_n: int,
    results: dict[str, object],
) -> None:
    from fastapi import FastAPI, Response
    from fastapi.testclient import TestClient

    from app.routes import datasets_api
    from app.services.dataset_browser import list_images
    from app.services.dataset_scan import ProbeCache

    app = FastAPI()
    app.state.services = SimpleNamespace(prefs=prefs, datasets=service)
    app.include_router(datasets_api.router)
    client = TestClient(app)
    page_no = images_n // 200 + 1  # a page from the middle of the folder
    t = time.perf_counter()
    page = list_images(
        folder, page=page_no, page_size=100, probes=ProbeCache(), captions=service.captions
    )
    results["page_list_ms"] = round((time.perf_counter() - t) * 1000, 1)
    urls = [datasets_api.thumbnail_url(item.path) for item in page.items]
    with ServerProcess(root, tmp_path / "thumbs") as base:
        served, etags = asyncio.run(load_page(base, urls, None, REPEATS))
        revalidated, _ = asyncio.run(load_page(base, urls, etags, REPEATS))
    results["page_serve_ms"] = spread(served)
    results["page_revalidate_ms"] = spread(revalidated)

    @app.get("/trivial")
    def trivial() -> Response:
        return Response(b"x")

    client = TestClient(app)
    client.get(urls[0])  # start the client's portal before timing
    for name, path, headers in (
        ("sequential_serve_ms", None, None),
        ("sequential_revalidate_ms", None, etags),
        ("floor_trivial_route_ms", "/trivial", None),
    ):
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            for i, url in enumerate(urls):
                h = {"If-None-Match": headers[i]} if headers else {}
                assert client.get(path or url, headers=h).status_code in (200, 304)
            runs.append((time.perf_counter() - t) * 1000)
        results[name] = spread(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--serve", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return

    with tempfile.TemporaryDirectory(prefix="td-bench-datasets-") as tmp:
        tmp_path = Path(tmp)
        os.environ["TUNERDECK_HOME"] = str(tmp_path / "home")
        from app.services.container import set_services
        from app.services.datasets import DatasetService
        from registry.validation import validate_config

        root = tmp_path / "datasets"
        folder = root / "many"
        started = time.perf_counter()
        make_images(folder, args.images)
        print(f"made {args.images} images in {time.perf_counter() - started:.1f} s")

        prefs = SimpleNamespace(prefs=SimpleNamespace(datasets_root=str(root)))
        service = DatasetService(prefs, cache_dir=tmp_path / "thumbs")
        plain = {"path": str(folder), "caption_extension": ".txt", "repeats": 1}
        # The effective entry (every default filled in), as the Datasets tab scans it.
        entry = validate_config({"datasets": [plain]}).values["datasets"][0]

        results: dict[str, object] = {"images": args.images, "cpus": os.cpu_count() or 0}
        _time_scans_and_thumbnails(service, entry, folder, args.images, results)
        _time_serving(service, prefs, root, folder, tmp_path, args.images, results)
        set_services(None)

    for key, value in results.items():
        print(f"{key:>20}: {value}")
    out = REPO / "bench" / "results" / "datasets.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
