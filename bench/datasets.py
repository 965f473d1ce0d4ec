"""Dataset speed on 10,000 small images: scan, cold thumbnails, a warm page of 100.

  scan_s             - `scan_dataset` with an empty probe cache (every file opened and checked)
  rescan_s           - the same scan again (probes reused: stat + captions only)
  thumbnails_cold_s  - every thumbnail made from nothing (renders + cache writes)
  page_list_ms       - list one page of 100 images (sizes and captions) from the folder
  page_serve_ms      - GET the 100 thumbnails of that page over HTTP, cache warm (200s)
  page_revalidate_ms - the same 100 GETs with If-None-Match (304s, what a reload costs)
Run: .venv/bin/python bench/datasets.py [--images N]   (writes bench/results/datasets.json)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = ((128, 128), (192, 128), (128, 192), (160, 96), (96, 160), (256, 256))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="td-bench-datasets-") as tmp:
        tmp_path = Path(tmp)
        os.environ["TUNERDECK_HOME"] = str(tmp_path / "home")
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        from app.routes import datasets_api
        from app.services.container import set_services
        from app.services.dataset_browser import list_images
        from app.services.dataset_scan import ProbeCache, scan_dataset
        from app.services.datasets import DatasetService

        root = tmp_path / "datasets"
        folder = root / "many"
        started = time.perf_counter()
        make_images(folder, args.images)
        print(f"made {args.images} images in {time.perf_counter() - started:.1f} s")

        prefs = SimpleNamespace(prefs=SimpleNamespace(datasets_root=str(root)))
        service = DatasetService(prefs, cache_dir=tmp_path / "thumbs")
        set_services(SimpleNamespace(prefs=prefs, datasets=service))  # type: ignore[arg-type]
        entry = {
            "path": str(folder),
            "caption_source": "sidecar",
            "caption_extension": ".txt",
            "repeats": 1,
        }

        results: dict[str, float | int] = {"images": args.images, "cpus": os.cpu_count() or 0}
        t = time.perf_counter()
        scan = scan_dataset(entry, resolution=128, batch_size=4, cache=service.probes)
        results["scan_s"] = round(time.perf_counter() - t, 3)
        assert scan.readable_count == args.images, scan.summary()
        t = time.perf_counter()
        scan_dataset(entry, resolution=128, batch_size=4, cache=service.probes)
        results["rescan_s"] = round(time.perf_counter() - t, 3)

        images = sorted(folder.glob("*.png"))
        t = time.perf_counter()
        for image in images:
            service.thumbnails.get(image)
        results["thumbnails_cold_s"] = round(time.perf_counter() - t, 3)
        results["thumbnail_cache_mb"] = round(service.thumbnails.size_on_disk() / 2**20, 1)

        app = FastAPI()
        app.include_router(datasets_api.router)
        client = TestClient(app)
        page_no = args.images // 200 + 1  # a page from the middle of the folder
        t = time.perf_counter()
        page = list_images(
            folder, page=page_no, page_size=100, probes=ProbeCache(), captions=service.captions
        )
        results["page_list_ms"] = round((time.perf_counter() - t) * 1000, 1)
        urls = [datasets_api.thumbnail_url(item.path) for item in page.items]
        client.get(urls[0])  # start the client's portal before timing
        t = time.perf_counter()
        etags = []
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, response.text
            etags.append(response.headers["etag"])
        results["page_serve_ms"] = round((time.perf_counter() - t) * 1000, 1)
        t = time.perf_counter()
        for url, etag in zip(urls, etags, strict=True):
            assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
        results["page_revalidate_ms"] = round((time.perf_counter() - t) * 1000, 1)
        set_services(None)

    for key, value in results.items():
        print(f"{key:>20}: {value}")
    out = REPO / "bench" / "results" / "datasets.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
