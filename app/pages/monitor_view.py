"""Chart options and small formatting helpers for the monitor and runs pages (no UI state)."""

from __future__ import annotations

from typing import Any


def smooth(values: list[float | None], weight: float) -> list[float | None]:
    """Exponential moving average (TensorBoard-style, debiased), skipping missing values."""
    out: list[float | None] = []
    last = 0.0
    count = 0
    for value in values:
        if value is None:
            out.append(None)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        debias = 1 - weight**count if weight > 0 else 1.0
        out.append(last / debias)
    return out


MAX_POINTS = 500  # per series on screen: long runs are thinned, the record keeps every point


def thin(pairs: list[list[float]], limit: int = MAX_POINTS) -> list[list[float]]:
    """Every k-th point (and always the last) so a chart never carries more than ~`limit`."""
    if len(pairs) <= limit:
        return pairs
    stride = -(-len(pairs) // limit)
    kept = pairs[::stride]
    if kept[-1] is not pairs[-1]:
        kept.append(pairs[-1])
    return kept


def loss_series(
    pairs: list[tuple[int, float | None]], weight: float, name: str = "loss"
) -> list[dict[str, Any]]:
    """The raw loss (faint) and its smoothed curve from (step, loss) pairs."""
    raw = [[step, loss] for step, loss in pairs if loss is not None]
    smoothed = smooth([pair[1] for pair in raw], weight)
    return [
        {
            "name": name,
            "type": "line",
            "showSymbol": False,
            "data": thin(raw),
            "lineStyle": {"opacity": 0.35},
        },
        {
            "name": f"{name} (smoothed)",
            "type": "line",
            "showSymbol": False,
            "data": thin([[pair[0], v] for pair, v in zip(raw, smoothed, strict=True)]),
        },
    ]


def line_chart(title: str, series: list[dict[str, Any]], *, log_y: bool = False) -> dict[str, Any]:
    return {
        "animation": False,
        "title": {"text": title, "textStyle": {"fontSize": 13}},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "right": 0, "type": "scroll"},
        "grid": {"left": 60, "right": 20, "top": 40, "bottom": 30},
        "xAxis": {"type": "value", "name": "step", "min": "dataMin"},
        "yAxis": {"type": "log" if log_y else "value", "scale": True},
        "series": series,
    }


def format_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
