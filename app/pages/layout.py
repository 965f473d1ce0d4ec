"""The frame every page shares: theme, header with navigation, banners, the run bar slot.

Preferences (theme, a recovered-preferences banner) are applied while the page is built, so
they reach the browser with the first render, without a round trip.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from nicegui import ui

from app.pages.client_limits import evict_unconnected
from app.services.container import Services

# (path, label, icon) of the pages in the navigation; other parts append theirs.
NAV_LINKS: list[tuple[str, str, str]] = [("/", "Trainer", "tune")]

_THEMES = {"light": False, "dark": True, "auto": None}

_BEFOREUNLOAD_JS = """
<script>
window.tunerdeckDirty = false;
window.addEventListener('beforeunload', (event) => {
  if (window.tunerdeckDirty) { event.preventDefault(); event.returnValue = ''; }
});
</script>
"""

_CSS = """
<style>
.td-field .td-flag { user-select: all; }
.td-highlight { outline: 2px solid var(--q-primary); outline-offset: 4px; border-radius: 4px; }
.td-main { max-width: 1200px; margin: 0 auto; }
.td-runbar { background: #f3f4f6; color: #111; }
.body--dark .td-runbar { background: #1d1d1d; color: #eee; }
</style>
"""


@dataclass
class Frame:
    header_left: ui.element
    header_right: ui.element
    dark: ui.dark_mode


def apply_theme(dark: ui.dark_mode, theme: str) -> None:
    dark.value = _THEMES.get(theme)


def page_frame(services: Services, current: str) -> Frame:
    """Lay out the shared header; returns slots the page fills (config controls, buttons)."""
    evict_unconnected(current=ui.context.client)  # bounded memory under plain page loads
    prefs = services.prefs.prefs
    dark = ui.dark_mode(_THEMES.get(prefs.theme))
    ui.add_head_html(_CSS + _BEFOREUNLOAD_JS)
    ui.colors(primary="#3f51b5")
    with ui.header(elevated=True).classes("items-center gap-3 px-3 py-1 flex-wrap"):
        ui.label("tunerdeck").classes("text-h6 font-bold")
        with ui.row().classes("gap-1 no-wrap"):
            for path, label, icon in NAV_LINKS:
                button = ui.button(label, icon=icon, on_click=lambda p=path: ui.navigate.to(p))
                button.props(
                    "flat dense no-caps color=white" + (" outline" if path == current else "")
                )
        left = ui.row().classes("items-center gap-2 flex-wrap")
        ui.space()
        right = ui.row().classes("items-center gap-1 flex-wrap")
    if services.prefs.recovery_message:
        banner = ui.card().classes("w-full bg-warning text-black td-main").mark("prefs-banner")
        with banner, ui.row().classes("items-center no-wrap"):
            ui.icon("warning")
            ui.label(services.prefs.recovery_message)
    _trainer_server_banner(services)
    return Frame(left, right, dark)


def _trainer_server_banner(services: Services) -> None:
    """In webui mode, say so while the remote trainer server cannot be reached."""
    run_service = services.run_service
    # Looked up, not imported: the module (httpx, and rich through it, about 4 MB) is loaded
    # only by a webui-mode server, the one kind that has a remote run service.
    remote = sys.modules.get("app.services.remote_run_service")
    if remote is None or not isinstance(run_service, remote.RemoteRunService):
        return
    banner = ui.card().classes("w-full bg-negative text-white td-main").mark("trainer-banner")
    with banner, ui.row().classes("items-center no-wrap"):
        ui.icon("cloud_off")
        message = ui.label(run_service.status_message)

    def show(reachable: bool, text: str) -> None:
        banner.set_visibility(not reachable)
        message.set_text(text)

    show(run_service.reachable, run_service.status_message)
    ui.context.client.on_delete(run_service.on_status(show))


def set_dirty_flag(dirty: bool) -> None:
    """Tell the browser whether closing the page should ask first."""
    ui.run_javascript(f"window.tunerdeckDirty = {'true' if dirty else 'false'};")


def transient_dialog() -> ui.dialog:
    """A dialog that is removed from the page once a later dialog opens after it was closed.

    (Deleting it right when it closes would pull the slot from under the handler that closed
    it, which may still want to notify.)
    """
    layout = ui.context.client.layout
    for child in list(layout.default_slot.children):
        if isinstance(child, ui.dialog) and _TRANSIENT_MARK in child._markers and not child.value:
            child.delete()
    return ui.dialog().mark(_TRANSIENT_MARK)


_TRANSIENT_MARK = "transient-dialog"
