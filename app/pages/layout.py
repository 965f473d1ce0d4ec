"""The frame every page shares: theme, header with navigation, banners, the run bar slot.

Preferences (theme, a recovered-preferences banner) are applied while the page is built, so
they reach the browser with the first render, without a round trip.

Page speed: the first render carries as few Vue components as it can. The brand colour is in
the Quasar config every page starts with (no colors element), a dark-mode element exists only
while the theme differs from the page's own default, and the header is Quasar's plain
QHeader. The shared look is plain CSS classes (td-*) defined here rather than Tailwind
utilities: each utility class on the page makes the in-browser Tailwind compiler build and
restyle the page again while it loads.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from nicegui import app, ui

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

PRIMARY = "#3f51b5"
app.config.quasar_config["brand"]["primary"] = PRIMARY  # every page starts with it

_CSS = """
<style>
.td-field .td-flag { user-select: all; }
.td-highlight { outline: 2px solid var(--q-primary); outline-offset: 4px; border-radius: 4px; }
.td-main { max-width: 1200px; margin: 0 auto; }
.td-runbar { background: #f3f4f6; color: #111; }
.body--dark .td-runbar { background: #1d1d1d; color: #eee; }
.td-bar { gap: .75rem; padding: .25rem .75rem; }
.td-g0 { gap: 0; } .td-g1 { gap: .25rem; } .td-g2 { gap: .5rem; }
.td-p0 { padding: 0; } .td-p2 { padding: .5rem; }
.td-w { width: 100%; }
.td-sm { font-size: .875rem; line-height: 1.25rem; }
.td-xs { font-size: .75rem; line-height: 1rem; }
.td-mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.td-help { cursor: help; }
.td-help::after { content: "help_outline"; font-family: "Material Icons"; font-size: 18px;
  line-height: 1; vertical-align: middle; margin-left: .5rem; color: #616161;
  font-feature-settings: "liga"; -webkit-font-feature-settings: "liga"; user-select: none; }
.td-grid { display: grid; grid-template-columns: minmax(0, 1fr); column-gap: 1.5rem;
  row-gap: .75rem; width: 100%; }
.td-field { display: flex; flex-wrap: wrap; align-items: center; column-gap: .5rem;
  row-gap: .25rem; min-width: 0; }
@media (min-width: 768px) {
  .td-grid { grid-template-columns: repeat(12, minmax(0, 1fr)); }
  .td-span-3 { grid-column: span 3 / span 3; } .td-span-4 { grid-column: span 4 / span 4; }
  .td-span-5 { grid-column: span 5 / span 5; } .td-span-6 { grid-column: span 6 / span 6; }
  .td-span-7 { grid-column: span 7 / span 7; } .td-span-8 { grid-column: span 8 / span 8; }
  .td-span-9 { grid-column: span 9 / span 9; } .td-span-10 { grid-column: span 10 / span 10; }
  .td-span-11 { grid-column: span 11 / span 11; } .td-span-12 { grid-column: 1 / -1; }
}
</style>
"""


@dataclass
class Frame:
    header_left: ui.element
    header_right: ui.element
    dark: ui.dark_mode | None  # None while the page's default theme is the one wanted


def apply_theme(dark: ui.dark_mode | None, theme: str) -> ui.dark_mode:
    """Switch the page to `theme`; returns the page's dark-mode element (made when first
    needed: pass it back next time)."""
    if dark is None:
        with ui.context.client.content:
            return ui.dark_mode(_THEMES.get(theme))
    dark.value = _THEMES.get(theme)
    return dark


def page_frame(services: Services, current: str) -> Frame:
    """Lay out the shared header; returns slots the page fills (config controls, buttons)."""
    client = ui.context.client
    evict_unconnected(current=client)  # bounded memory under plain page loads
    wanted = _THEMES.get(services.prefs.prefs.theme)
    dark = ui.dark_mode(wanted) if wanted != client.page.resolve_dark() else None
    ui.add_head_html(_CSS + _BEFOREUNLOAD_JS)
    with client.layout:  # QHeader itself: NiceGUI's header component adds only scroll padding
        header = ui.element("q-header").props("elevated").classes("nicegui-header td-bar")
    header.classes("wrap items-center")
    header.move(target_index=0)  # first in the DOM, as ui.header places it
    view = client.layout.props["view"]
    client.layout.props["view"] = view[0] + "H" + view[2:]  # fixed to the top
    with header:
        ui.label("tunerdeck").classes("text-h6 text-weight-bold")
        with ui.row().classes("td-g1 no-wrap"):
            for path, label, icon in NAV_LINKS:
                button = ui.button(label, icon=icon, on_click=lambda p=path: ui.navigate.to(p))
                button.props(
                    "flat dense no-caps color=white" + (" outline" if path == current else "")
                )
        left = ui.row().classes("items-center wrap td-g2")
        ui.space()
        right = ui.row().classes("items-center wrap td-g1")
    if services.prefs.recovery_message:
        banner = ui.card().classes("td-w bg-warning text-black td-main").mark("prefs-banner")
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
    banner = ui.card().classes("td-w bg-negative text-white td-main").mark("trainer-banner")
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
