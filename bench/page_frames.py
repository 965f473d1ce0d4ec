"""What a Monitor page showed, read from the websocket frames it received: each frame as
(receive time on the time.monotonic() clock, payload text), from a browser's DevTools log or
a bench/socket_client.py client. The page itself carries nothing for the bench."""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import time

STEP_SHOWN = re.compile(r"step (\d+)/\d+")  # the header's "step N/M" (and the banner's)
CHART_DRAW = "run_chart_method"
CHART_WAIT_S = 1.5  # longer than the page's chart redraw interval
# A chart redraw, runMethod(id, "run_chart_method", ["setOption", ...]), in JSON-quoted code.
CHART_ID = re.compile(r'runMethod\((\d+), \\"run_chart_method')


def steps_shown(frames: list[tuple[float, str]]) -> list[tuple[float, int]]:
    """(receive time, highest "step N" in the frame) for each frame that shows a step."""
    shown = []
    for ts, payload in frames:
        steps = [int(m) for m in STEP_SHOWN.findall(payload)]
        if steps:
            shown.append((ts, max(steps)))
    return shown


def _last_chart_step(frames: list[tuple[float, str]]) -> int | None:
    """The highest step in the loss series of the last chart redraw."""
    for _ts, payload in reversed(frames):
        if CHART_DRAW not in payload:
            continue
        data = json.loads(payload[payload.index("[") :])[1]
        code = data["code"]
        args = json.loads(code[code.index('"run_chart_method", ') + 20 : code.rindex(")")])
        loss = [s for s in args[1]["series"] if s["name"] == "loss"]
        if loss:  # else the learning-rate chart
            return max((int(x) for x, _y in loss[0]["data"]), default=0)
    return None


@dataclasses.dataclass
class ClientFigures:
    """What the browsers' frames show, over all clients of one phase."""

    emitted: int
    latencies: list[float] = dataclasses.field(default_factory=list)
    lost_per_client: list[int] = dataclasses.field(default_factory=list)
    backwards: int = 0
    redraws_max: list[int] = dataclasses.field(default_factory=list)
    redraws_mean: list[float] = dataclasses.field(default_factory=list)
    chart_tail: list[int | None] = dataclasses.field(default_factory=list)
    step_frames: list[float] = dataclasses.field(default_factory=list)  # header updates per s


def client_figures(
    frames: list[list[tuple[float, str]]], emitted: dict[int, float], total: int, seconds: float
) -> ClientFigures:
    to_wall = time.time() - time.monotonic()  # the browsers' frame times are monotonic
    got = ClientFigures(emitted=len(emitted))
    for client_frames in frames:
        # Each step is on the page from the first frame showing it or a later step.
        covered = 0
        for ts, step in steps_shown(client_frames):
            if step < covered:
                got.backwards += 1
            while covered < step and covered < total:
                covered += 1
                got.latencies.append(ts + to_wall - emitted[covered])
        got.lost_per_client.append(total - covered)
        got.step_frames.append(len(steps_shown(client_frames)) / seconds)
        # Redraws per chart (the loss and the learning-rate chart) in each whole second.
        draws = [
            (m.group(1), ts) for ts, payload in client_frames if (m := CHART_ID.search(payload))
        ]
        per_second = collections.Counter((chart, int(ts)) for chart, ts in draws)
        got.redraws_max.append(max(per_second.values(), default=0))
        charts = len({chart for chart, _ts in draws}) or 1
        got.redraws_mean.append(len(draws) / charts / seconds)
        got.chart_tail.append(_last_chart_step(client_frames))
    return got
