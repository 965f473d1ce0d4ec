"""The run bar at the foot of the trainer page: state, step/max, progress, it/s, ETA, loss,
and Start / Stop / Resume, enabled only when they make sense (plus Kill while a stop takes
long).

Start stays disabled while the config has problems (listed here, each a link to its field).
The bar follows "the current run": the active one, else the next queued, else the latest.
Every browser tab has its own bar, fed from the same event bus, so all show the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nicegui import run as nicegui_run
from nicegui import ui

from app.pages.live_updates import LiveUpdates
from app.services import hardware
from app.services.container import Services
from app.services.estimate_view import describe as describe_estimate
from app.services.event_bus import Item
from app.services.form_state import FormState
from app.services.monitor_model import ToastType
from app.services.preflight import Finding, preflight
from app.services.run_service import RunError, RunInfo
from registry.validation import Issue
from tunerdeck_common.events import Event

NO_RUN_SERVICE = "Runs are not available: this server has no run service yet."
_TOASTS: dict[str, ToastType] = {
    "running": "info",
    "stopped": "info",
    "completed": "positive",
    "failed": "negative",
}


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def pick_current(runs: list[RunInfo]) -> RunInfo | None:
    """The run a bar shows: active first, then the next queued, then the most recent."""
    for run in runs:
        if run.state.is_active:
            return run
    queued = sorted((r for r in runs if r.state == "queued"), key=lambda r: r.queue_position or 0)
    if queued:
        return queued[0]
    return max(runs, key=lambda r: r.created_at, default=None)


def run_summary(run: RunInfo) -> str:
    parts: list[str] = [run.state]
    if run.queue_position is not None:
        parts.append(f"#{run.queue_position + 1} in queue")
    return " · ".join(parts)


def fold_progress(run: RunInfo, data: dict) -> None:
    """What a progress event changes in the run's summary (no round trip to the service)."""
    run.step = int(data["step"])
    run.max_steps = int(data.get("max_steps") or run.max_steps)
    if data.get("loss") is not None:
        run.loss = float(data["loss"])
    run.lr = data.get("lr", run.lr)
    run.it_per_s = data.get("it_per_s", run.it_per_s)
    run.eta_s = data.get("eta_s", run.eta_s)


def stage_view(stage: dict | None) -> tuple[str, float | None]:
    """A starting run's stage as (label, fraction done or None when it has no count)."""
    if not stage:
        return "starting: launching the trainer", None
    name = str(stage.get("name", ""))
    done, total = stage.get("done"), stage.get("total")
    if isinstance(total, int) and total > 0 and isinstance(done, int):
        return f"{name} {done}/{total}", round(min(1.0, done / total), 4)
    return name, None


def shows_stage(state: str, step: int, stage: dict | None) -> bool:
    """Whether a run's stage replaces "step 0/?": while it starts, and during a step 1 that
    takes long (a compile) after it reported one."""
    return state == "starting" or (state == "running" and step == 0 and stage is not None)


def stage_of(item: Item) -> dict | None:
    """The data of a stage event, else None."""
    if isinstance(item, Event) and item.type == "stage":
        return dict(item.data)
    return None


def redraw_on_run_changes(service: object, live: LiveUpdates) -> None:
    """Also redraw when runs change without an event (another tab's Stop, a queue reordered,
    a run deleted), so every tab shows the same state. Run services without the hook (a remote
    one) are followed through their events alone."""
    on_change = getattr(service, "on_change", None)
    if on_change is not None:
        ui.context.client.on_delete(on_change(live.poke))


class RunBar:
    def __init__(self, form: FormState, services: Services, jump_to: Callable[[str], None]) -> None:
        self.form = form
        self.services = services
        self.jump_to = jump_to
        self._problems: list[Issue] = []
        self._findings: list[Finding] = []
        self.current: RunInfo | None = None
        self.queued_count = 0
        self.stages: dict[str, dict] = {}  # run id -> its latest stage while it starts
        self._busy = False
        with (
            ui.footer(elevated=True)
            .classes("items-center td-bar bg-grey-2 text-black")  # td-*: the page layout's CSS
            .mark("run-bar") as self.footer
        ):
            self.status = (
                ui.label("Idle")
                .classes("td-sm text-weight-medium td-run-status")
                .mark("run-status")
            )
            with ui.column().classes("td-g0").style("min-width: 10rem"):
                # instant-feedback: no CSS transition repainting on each of many updates.
                self.progress = (
                    ui.linear_progress(value=0, show_value=False, size="8px")
                    .props("instant-feedback")
                    .mark("run-progress")
                )
                self.step_label = ui.label("").classes("td-xs td-run-step").mark("run-step")
            self.stats = ui.label("").classes("td-xs text-grey-8").mark("run-stats")
            self.start = (
                ui.button("Start", icon="play_arrow", on_click=self._start)
                .props("dense no-caps")
                .classes("td-start")
                .mark("start")
            )
            self.stop = (
                ui.button("Stop", icon="stop", on_click=self._stop)
                .props("dense no-caps outline")
                .classes("td-stop")
                .mark("stop")
            )
            self.kill: ui.button | None = None  # made when a stop first takes long (_show_kill)
            self.resume = ui.button("Resume", icon="replay", on_click=self._resume).props(
                "dense no-caps outline"
            )
            self.resume.classes("td-resume").mark("resume")
            # A flat button with an href (an <a>): a Quasar element, where ui.link would make
            # every page load fetch and compile a NiceGUI component of its own.
            self.monitor_link = (
                ui.button("Monitor")
                .props("flat dense no-caps color=primary href=/monitor")
                .classes("td-sm")
                .mark("monitor-link")
            )
            self.reason = ui.label("").classes("td-xs text-grey-8").mark("start-reason")
            self.estimate = ui.label("").classes("td-xs text-grey-8").mark("run-estimate")
            self.fit_warning = (
                ui.label("")
                .classes("td-xs text-warning")
                .style("max-width: 36rem")
                .mark("fit-warning")
            )
        # The problems panel is made when there is first something to list: most loads have
        # nothing, and an expansion is a NiceGUI component the browser would compile each time.
        self.problem_box: ui.expansion | None = None
        self.problem_list: ui.column | None = None
        self.preflight_list: ui.column | None = None
        self._gpus = hardware.snapshot().gpus  # total memory does not change while we run
        self.show_estimate()
        self.stop.disable()
        self.resume.disable()
        self.set_problems(form.problems())
        self.live: LiveUpdates | None = None
        if services.run_service is not None and services.event_bus is not None:
            self.live = LiveUpdates(services.event_bus, self._on_items, accept=_state_changing)
            redraw_on_run_changes(services.run_service, self.live)
            self.live.poke()

    @property
    def can_start(self) -> bool:
        return not self._problems and self.services.run_service is not None

    def _problem_panel(self) -> tuple[ui.expansion, ui.column, ui.column]:
        """The problems panel, made on first need, last in the bar."""
        if self.problem_box is None:
            with self.footer:
                box = ui.expansion("", icon="error_outline").classes("text-negative")
                box.props("dense").mark("problems")
                with box:
                    self.problem_list = ui.column().classes("gap-0 max-h-40 overflow-auto")
                    # What the last preflight (at Start) found, each with its fix.
                    self.preflight_list = (
                        ui.column().classes("gap-0 max-h-40 overflow-auto").mark("preflight")
                    )
            self.problem_box = box
        assert self.problem_list is not None and self.preflight_list is not None
        return self.problem_box, self.problem_list, self.preflight_list

    def set_problems(self, problems: list[Issue]) -> None:
        self._problems = list(problems)
        count = len(self._problems)
        shown = count + len(self._findings)
        if shown or self.problem_box is not None:
            box, problem_list, _ = self._problem_panel()
            problem_list.clear()
            with problem_list:
                for issue in self._problems:
                    link = ui.label(f"{issue.path}: {issue.message}").classes(
                        "text-sm text-negative cursor-pointer underline"
                    )
                    link.on(
                        "click",
                        lambda _, p=issue.path: self.jump_to(p.split("[")[0].split(".")[0]),
                    )
            box.text = f"{shown} problem{'s' if shown != 1 else ''} to fix before starting"
            box.set_visibility(bool(shown))
        if count:
            self.reason.text = (
                f"Start is disabled: {count} problem{'s' if count != 1 else ''} in the config."
            )
        elif self.services.run_service is None:
            self.reason.text = NO_RUN_SERVICE
        elif self.current is not None and self.current.state.is_active:
            self.reason.text = "A run is active: Start adds the config to the queue."
        else:
            self.reason.text = ""
        self.start.set_enabled(self.can_start)

    def set_preflight(self, findings: list[Finding]) -> None:
        """Show what the checks before Start found (blocking ones in red), each with its fix."""
        self._findings = list(findings)
        if self._findings or self.problem_box is not None:  # else no panel to fill or empty
            self._fill_preflight()
        self.set_problems(self._problems)

    def _fill_preflight(self) -> None:
        _, _, preflight_list = self._problem_panel()
        preflight_list.clear()
        with preflight_list:
            for finding in self._findings:
                color = "text-negative" if finding.blocking else "text-warning"
                with ui.column().classes("gap-0 py-1").mark(f"preflight-{finding.check}"):
                    link = ui.label(finding.message).classes(f"text-sm {color}")
                    if finding.path:
                        link.classes("cursor-pointer underline")
                        link.on(
                            "click",
                            lambda _, p=finding.path: self.jump_to(p.split("[")[0].split(".")[0]),
                        )
                    ui.label(f"Fix: {finding.fix}").classes("text-xs text-grey-8")

    def _run_preflight(self) -> list[Finding]:
        prefs = self.services.prefs.prefs
        datasets = self.services.datasets  # its probe cache: a re-check only stats files
        return preflight(
            self.form.validation().values,
            output_root=Path(prefs.output_root),
            datasets_root=Path(prefs.datasets_root),
            cache=getattr(datasets, "probes", None),
        )

    def show_estimate(self) -> None:
        """The form's estimated peak memory and step time; a warning when it will not fit."""
        try:
            view = describe_estimate(self.form.validation().values, self._gpus)
        except (KeyError, TypeError, ValueError):  # a half-typed config: keep the last one
            return
        self.estimate.text = view.text
        self.fit_warning.text = view.warning
        self.fit_warning.set_visibility(bool(view.warning))

    # ---- live state ---------------------------------------------------------------------------
    async def _on_items(self, items: list[Item]) -> None:
        for item in items:  # toasts for lifecycle changes and errors, on every tab
            if (
                isinstance(item, Event)
                and item.type == "lifecycle"
                and item.data["state"] in _TOASTS
            ):
                ui.notify(
                    f"Run {item.run_id} {item.data['state']}", type=_TOASTS[item.data["state"]]
                )
            elif isinstance(item, Event) and item.type == "error":
                ui.notify(
                    f"Run {item.run_id}: {item.data['message']}", type="negative", multi_line=True
                )
        for item in items:
            stage = stage_of(item)
            if stage is not None:
                self.stages[item.run_id] = stage
        current = self.current
        if items and current is not None and all(_progress_of(i, current.id) for i in items):
            # Training steps of the run shown: fold them in, without listing every run again.
            fold_progress(current, items[-1].data)  # type: ignore[union-attr]  # all are progress Events
            self.show(current)
            return
        await self.refresh()

    async def refresh(self) -> None:
        service = self.services.run_service
        if service is None:
            return
        try:
            runs = await service.list_runs()
        except RunError as exc:  # a remote trainer server that is away: keep the last state
            self.stats.text = exc.message
            return
        self.queued_count = sum(1 for r in runs if r.state == "queued")
        self.show(pick_current(runs))

    def show(self, run: RunInfo | None) -> None:
        self.current = run
        busy = False  # an indeterminate bar: a stage with nothing to count
        if run is None:
            self.status.text = "Idle: no run yet"
            self.progress.value = 0
            self.step_label.text = ""
            self.stats.text = ""
        else:
            self.status.text = f"Run {run.id}: {run_summary(run)}"
            fraction = run.step / run.max_steps if run.max_steps else 0.0
            self.progress.value = round(min(1.0, fraction), 4)
            self.step_label.text = f"step {run.step}/{run.max_steps or '?'}"
            if shows_stage(run.state, run.step, self.stages.get(run.id)):
                label, done = stage_view(self.stages.get(run.id))
                self.step_label.text = label
                self.progress.value = done or 0
                busy = done is None
            stats = []
            if run.it_per_s:
                stats.append(f"{run.it_per_s:.2f} it/s")
            if run.eta_s is not None and run.state.is_active:
                stats.append(f"ETA {format_duration(run.eta_s)}")
            if run.loss is not None:
                stats.append(f"loss {run.loss:.4f}")
            if self.queued_count and run.state != "queued":
                stats.append(f"{self.queued_count} queued")
            self.stats.text = " · ".join(stats)
        self._set_busy(busy)
        self.stop.set_enabled(run is not None and run.can_stop)
        self.resume.set_enabled(run is not None and run.can_resume)
        self._show_kill(
            run is not None
            and run.state == "stopping"
            and hasattr(self.services.run_service, "kill_run")
        )
        self.set_problems(self._problems)

    def _show_kill(self, visible: bool) -> None:
        """Kill, only while a stop is taking long: SIGKILL now, losing the stop's checkpoint.
        Made the first time it shows, next to Stop."""
        if visible and self.kill is None:
            with self.footer:
                self.kill = (
                    ui.button("Kill", icon="dangerous", on_click=self._kill)
                    .props("dense no-caps outline color=negative")
                    .tooltip("Kill the trainer now, without waiting for its checkpoint")
                    .mark("kill")
                )
            self.kill.move(target_index=self.footer.default_slot.children.index(self.stop) + 1)
        if self.kill is not None:
            self.kill.set_visibility(visible)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            if busy:
                self.progress.props("indeterminate")
            else:
                self.progress.props(remove="indeterminate")

    # ---- buttons ------------------------------------------------------------------------------
    async def _start(self) -> None:
        service = self.services.run_service
        if service is None or not self.can_start:
            return
        findings = await nicegui_run.io_bound(self._run_preflight)  # reads folders: off the loop
        if findings is None:  # the server is shutting down
            return
        self.set_preflight(findings)
        blocking = [f for f in findings if f.blocking]
        if blocking:
            ui.notify(
                f"Not started: {blocking[0].message} (see the problems below)",
                type="negative",
                multi_line=True,
            )
            return
        if self.fit_warning.text:  # said before the run fails with out-of-memory
            ui.notify(self.fit_warning.text, type="warning", multi_line=True)
        try:
            run = await service.start_run(
                config=self.form.config(), config_name=self.form.config_name
            )
        except RunError as exc:
            ui.notify(" ".join([exc.message, *exc.errors]), type="negative", multi_line=True)
            return
        where = "queued" if run.state == "queued" else "started"
        ui.notify(f"Run {run.id} {where}", type="positive")
        await self.refresh()

    async def _stop(self) -> None:
        if self.current is None or self.services.run_service is None:
            return
        try:
            run = await self.services.run_service.stop_run(self.current.id)
        except RunError as exc:
            ui.notify(exc.message, type="warning")
            return
        ui.notify(f"Stopping run {run.id}: saving a checkpoint", type="info")
        await self.refresh()

    async def _kill(self) -> None:
        if self.current is None or self.services.run_service is None:
            return
        try:
            run = await self.services.run_service.kill_run(self.current.id)
        except RunError as exc:
            ui.notify(exc.message, type="warning")
            return
        ui.notify(f"Run {run.id} killed", type="warning")
        await self.refresh()

    async def _resume(self) -> None:
        if self.current is None or self.services.run_service is None:
            return
        try:
            run = await self.services.run_service.resume_run(self.current.id)
        except RunError as exc:
            ui.notify(exc.message, type="warning")
            return
        ui.notify(f"Resuming run {run.id} from its latest checkpoint", type="positive")
        await self.refresh()


def _progress_of(item: Item, run_id: str) -> bool:
    return isinstance(item, Event) and item.type == "progress" and item.run_id == run_id


def _state_changing(item: Item) -> bool:
    """The bar only needs events (not raw log lines) to redraw."""
    return not hasattr(item, "text")
