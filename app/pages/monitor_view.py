"""Chart options and small formatting helpers for the monitor and runs pages (no UI state)."""

from __future__ import annotations

from typing import Any

from app.services.chart_data import MAX_POINTS, ChartData, loss_series

# The series live in the chart-data service (shared with the runs page's comparison).
__all__ = ["MAX_POINTS", "ChartData", "format_bytes", "line_chart", "loss_series"]


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
