"""The scan result of one dataset entry: counts, problem files, histograms, buckets."""

from __future__ import annotations

from nicegui import ui

from app.services.dataset_scan import ScanResult

_MAX_LISTED = 200  # file names listed in the page; the count is always exact


def _bar_chart(title: str, counts: dict[str, int], axis: str, marker: str) -> None:
    ui.echart(
        {
            "title": {"text": title, "textStyle": {"fontSize": 13}},
            "tooltip": {"trigger": "axis"},
            "grid": {"left": 40, "right": 10, "bottom": 50, "top": 35},
            "xAxis": {
                "type": "category",
                "data": list(counts),
                "name": axis,
                "nameLocation": "middle",
                "nameGap": 35,
            },
            "yAxis": {"type": "value", "minInterval": 1},
            "series": [{"type": "bar", "data": list(counts.values())}],
        }
    ).classes("w-full md:w-[32rem] h-56").mark(marker)


def _file_list(title: str, lines: list[str], marker: str) -> None:
    with (
        ui.expansion(f"{title} ({len(lines)})", icon="warning")
        .classes("w-full")
        .props("dense")
        .mark(marker),
        ui.column().classes("gap-0 max-h-48 overflow-auto font-mono text-xs"),
    ):
        for line in lines[:_MAX_LISTED]:
            ui.label(line)
        if len(lines) > _MAX_LISTED:
            ui.label(f"… and {len(lines) - _MAX_LISTED} more")


def render_scan_result(result: ScanResult) -> None:
    """Everything the scan found, for the entry's card."""
    if result.error:
        ui.label(f"Scan: {result.error}").classes("text-negative text-sm").mark("scan-error")
        return
    _counts(result)
    _file_lists(result)
    _distributions(result)


def _counts(result: ScanResult) -> None:
    with ui.row().classes("gap-4 text-sm flex-wrap").mark("scan-counts"):
        ui.label(f"{result.image_count} image files").mark("scan-image-count")
        ui.label(f"{result.readable_count} readable")
        ui.label(f"{len(result.unreadable)} unreadable").classes(
            "text-negative" if result.unreadable else ""
        )
        ui.label(f"{len(result.missing_captions)} without caption").classes(
            "text-warning" if result.missing_captions else ""
        )
        ui.label(f"{result.smaller_than_resolution} smaller than {result.resolution}px")
        if result.filtered:
            ui.label(f"{len(result.filtered)} left out by size filters").classes(
                "text-warning"
            ).mark("scan-filtered-count")
        if result.missing_masks:
            ui.label(f"{len(result.missing_masks)} without mask").classes("text-warning")
        if result.resized_masks:
            ui.label(f"{len(result.resized_masks)} masks resized").classes("text-warning")
        ui.label(
            f"~{result.steps_per_epoch} steps per epoch alone (batch {result.batch_size}, repeats {result.repeats})"
        ).mark("scan-steps")


def _file_lists(result: ScanResult) -> None:
    if result.unreadable:
        _file_list(
            "Unreadable images",
            [f"{name}: {why}" for name, why in result.unreadable],
            "scan-unreadable",
        )
    if result.missing_captions:
        _file_list("Images without a caption", result.missing_captions, "scan-missing-captions")
    if result.filtered:
        reasons = ", ".join(f"{n} {why}" for why, n in result.filter_counts().items())
        _file_list(
            f"Left out by size filters: {reasons}",
            [f"{name}: {why}" for name, why in result.filtered],
            "scan-filtered",
        )
    if result.missing_masks:
        _file_list(
            "Images without a mask file (train unmasked)",
            result.missing_masks,
            "scan-missing-masks",
        )
    if result.resized_masks:
        _file_list(
            "Masks of another size than their image (resized to it)",
            result.resized_masks,
            "scan-resized-masks",
        )
    if result.unmasked_alpha:
        _file_list(
            "Images without an alpha channel (train unmasked)",
            result.unmasked_alpha,
            "scan-unmasked-alpha",
        )


def _distributions(result: ScanResult) -> None:
    with ui.row().classes("w-full gap-2 flex-wrap"):
        _bar_chart("Shorter side (px)", result.side_histogram, "pixels", "scan-side-histogram")
        _bar_chart(
            "Aspect ratio (width / height)",
            result.aspect_histogram,
            "ratio",
            "scan-aspect-histogram",
        )
    rows = [
        {
            "bucket": label,
            "images": result.images_per_bucket[label],
            "samples": result.samples_per_bucket[label],
        }
        for label in result.samples_per_bucket
    ]
    ui.label(f"Samples per bucket at {result.resolution}px").classes("text-sm font-medium")
    ui.table(
        columns=[
            {"name": "bucket", "label": "Bucket (w×h)", "field": "bucket", "align": "left"},
            {"name": "images", "label": "Images", "field": "images"},
            {"name": "samples", "label": "Samples (× repeats)", "field": "samples"},
        ],
        rows=rows,
        row_key="bucket",
    ).props("dense flat").classes("max-w-lg").mark("scan-buckets")
