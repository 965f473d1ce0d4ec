"""Follows the two files a trainer appends to: RUN_DIR/events.jsonl and RUN_DIR/trainer.log.

The file follower is what makes the record complete: callbacks are the fast path, but events
a callback lost (server restarted, sender buffer full) are read back from the file here.

Output lines are cut at MAX_LINE_CHARS: a trainer that prints megabytes without a newline
(a progress bar gone wrong, a dumped tensor) must not grow the server's memory with it. The
rest of such a line is skipped up to its newline; the file itself keeps everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.services.run_launch import LOG_FILE
from tunerdeck_common.events import EVENTS_FILE, Event, event_line, iter_event_lines

MAX_LINE_CHARS = 4000
_CUT = " … [line cut: longer than {} characters; trainer.log has it whole]"
_LINE_END = re.compile(rb"[\r\n]")


def clip_line(text: str) -> str:
    """`text`, cut at MAX_LINE_CHARS with a note saying so."""
    if len(text) <= MAX_LINE_CHARS:
        return text
    return text[:MAX_LINE_CHARS] + _CUT.format(MAX_LINE_CHARS)


class RunFollower:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.events_path = run_dir / EVENTS_FILE
        self.log_path = run_dir / LOG_FILE
        self.events_offset = 0
        self.log_offset = 0
        self._partial = b""
        self._skipping = False  # inside an over-long line already shown cut

    def poll_events(self, known: Callable[[str, int], bool] | None = None) -> list[Event]:
        """New events of the file; `known(run_id, seq)` skips ones already delivered."""
        skip = None
        if known is not None:

            def skip(raw: Any) -> bool:
                return isinstance(raw, dict) and known(
                    str(raw.get("run_id")), int(raw.get("seq") or 0)
                )

        events: list[Event] = []
        for offset, event in iter_event_lines(self.events_path, self.events_offset, skip):
            self.events_offset = offset
            if event is not None:
                events.append(event)
        return events

    def poll_lines(self, max_bytes: int = 1 << 20) -> list[str]:
        """Complete new lines of trainer.log ('\\r' progress redraws count as line ends)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self.log_offset)
                chunk = handle.read(max_bytes)
        except OSError:
            return []
        if not chunk:
            return []
        self.log_offset += len(chunk)
        *complete, partial = _LINE_END.split(self._partial + chunk)
        lines: list[str] = []
        for raw in complete:
            if self._skipping:  # the newline that ends an over-long line
                self._skipping = False
                continue
            line = raw.decode("utf-8", "replace")
            if line.strip():
                lines.append(clip_line(line))
        if self._skipping:
            partial = b""
        elif len(partial) > 4 * MAX_LINE_CHARS:  # 4: the most bytes a character takes
            lines.append(clip_line(partial[: 4 * MAX_LINE_CHARS].decode("utf-8", "replace")))
            partial = b""
            self._skipping = True
        self._partial = partial
        return lines

    def skip_log_to_end(self) -> None:
        try:
            self.log_offset = self.log_path.stat().st_size
        except OSError:
            self.log_offset = 0

    def append(self, event: Event) -> None:
        """Add an event the server writes itself (only when no trainer process is alive)."""
        self.events_path.parent.mkdir(parents=True, exist_ok=True)
        with self.events_path.open("ab") as handle:
            if handle.tell() and not _ends_with_newline(self.events_path):
                handle.write(b"\n")  # never glue onto a line torn by a crash
            handle.write(event_line(event).encode())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def last_seq_in(path: Path) -> int:
    last = 0
    try:
        with path.open("rb") as handle:
            for line in handle:
                try:
                    last = max(last, int(json.loads(line)["seq"]))
                except (ValueError, KeyError, TypeError):
                    continue
    except OSError:
        return 0
    return last
