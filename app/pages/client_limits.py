"""A bound on page loads whose browser never opens the websocket.

NiceGUI builds a page's whole element tree into a `Client` on every GET and keeps it until the
browser's socket connects; one that never connects (a crawler, a script, a tab closed while
loading) is pruned only after 60 s. A trainer page holds about 1.5 MB, so a burst of plain GETs
grew the server by hundreds of MB. `evict_unconnected()` runs on every page build and deletes
the oldest clients that are still waiting for their socket beyond `MAX_WAITING`: only pages
already sent (never one still being built, e.g. awaiting a remote trainer server) and none
younger than `MIN_AGE_S`, which may be about to connect. A real browser whose page was evicted
anyway is refused at its handshake and reloads the page.
"""

from __future__ import annotations

import logging
import time

from nicegui import Client

log = logging.getLogger(__name__)

MAX_WAITING = 12  # clients waiting for their socket that are kept (the newest)
MIN_AGE_S = 0.5


def _waiting(client: Client) -> bool:
    # NiceGUI's own pruning test (no socket, not in its reconnect grace period), and the page
    # was sent: a page still being built is never pulled from under its builder.
    return not client.has_socket_connection and not client._delete_tasks and client._response_built


def evict_unconnected(
    keep: int | None = None, min_age_s: float | None = None, current: Client | None = None
) -> int:
    """Delete the oldest waiting clients beyond `keep` (MAX_WAITING); returns how many."""
    keep = MAX_WAITING if keep is None else keep
    min_age_s = MIN_AGE_S if min_age_s is None else min_age_s
    now = time.time()
    waiting = sorted(
        (c for c in list(Client.instances.values()) if c is not current and _waiting(c)),
        key=lambda c: c.created,
    )
    evicted = 0
    for client in waiting[: max(0, len(waiting) - keep)]:
        if now - client.created < min_age_s:
            break
        try:
            client.delete()
            evicted += 1
        except Exception:  # one odd client must not break the page being built
            log.exception("could not delete waiting client %s", client.id)
    return evicted
