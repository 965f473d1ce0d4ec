"""Build the demo model in the background when the server starts and it is missing.

A new user's first step is the demo run; generating its model (a short VAE fit) takes about
half a minute of one CPU core, once per install. Done while the user reads the page, the
first run shows its first validation image sooner. The work runs in a separate, low-priority
`python -m trainer.demo_model` process (the UI process never imports torch); a run started
meanwhile waits for it through the model's file lock instead of generating it twice.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

from tunerdeck_common.paths import data_dir, is_demo_model_ready

ENV_OFF = "TUNERDECK_NO_DEMO_WARMUP"  # set to 1 to skip (tests, machines without the demo)


def start_demo_warmup() -> subprocess.Popen | None:
    """The warm-up process, or None when the model is there already or warm-up is off."""
    if os.environ.get(ENV_OFF) or is_demo_model_ready():
        return None
    log = data_dir() / "demo-warmup.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "trainer.demo_model"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_lower_priority if os.name == "posix" else None,
        )


def _lower_priority() -> None:
    with contextlib.suppress(OSError):
        os.nice(10)  # the user's own runs come first
