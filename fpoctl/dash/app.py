"""The dashboard App: owns the store reader, routes between screens, runs key actions."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel

from fpoctl.dash import actions
from fpoctl.dash.reader import StoreReader
from fpoctl.dash.screens.ask import AskScreen
from fpoctl.dash.screens.compare import CompareScreen
from fpoctl.dash.screens.confirm import ConfirmScreen
from fpoctl.dash.screens.help import HelpScreen
from fpoctl.dash.screens.run import RunScreen
from fpoctl.dash.screens.runs import RunsScreen
from fpoctl.settings import Settings
from fpoctl.store import Store


class DashApp(App[None]):
    """`fpoctl dash`: runs table -> run -> compare, refreshed from the store about once a second."""

    CSS_PATH = Path(__file__).with_name("dash.tcss")
    TITLE = "fpoctl dash"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "keys"),
    ]

    def __init__(self, store: Store, settings: Settings, *, run_id: int | None = None,
                 interval: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.settings = settings
        self.start_run = run_id
        self.reader = StoreReader(store, interval=interval, clock=clock)
        self._last_error = ""

    def get_default_screen(self) -> RunsScreen:
        return RunsScreen()

    def on_mount(self) -> None:
        self.reader.start()
        if self.start_run is not None:
            self.push_screen(RunScreen(self.start_run))

    def on_unmount(self) -> None:
        self.reader.stop()

    def open_run(self, run_id: int) -> None:
        """Show one run."""
        self.push_screen(RunScreen(run_id))

    def open_compare(self, run_ids: list[int]) -> None:
        """Overlay several runs."""
        self.push_screen(CompareScreen(run_ids))

    def action_help(self) -> None:
        """Every key of the screen in front (shown or not in the footer) and what it does."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def report_read_error(self, error: str) -> None:
        """Tell the user once per distinct error (the reader keeps retrying)."""
        if error != self._last_error:
            self._last_error = error
            self.notify(error, title="store", severity="error", timeout=8)

    def act_on_run(self, name: str, run_id: int, run_label: str) -> None:
        """Stop / resume / push a run in the background (errors become notifications). An action
        that cannot be taken back asks first (stop); one that needs an answer (push: the repo)
        asks for it; `run_label` names the run in the question."""
        action = actions.ACTIONS[name]
        if action.confirm is not None:
            def confirmed(yes: bool | None) -> None:
                if yes:
                    self._perform(name, run_id)

            self.push_screen(ConfirmScreen(action.confirm.format(run=run_label)), confirmed)
        elif action.asks is not None:
            def answered(value: str | None) -> None:
                if value:
                    self._perform(name, run_id, value)

            self.push_screen(AskScreen(action.asks.format(run=run_label), "ORG/NAME"), answered)
        else:
            self._perform(name, run_id)

    def _perform(self, name: str, run_id: int, *answers: str) -> None:
        """Call the service in a daemon thread: a slow one (a push) never holds up `q`."""
        def work() -> None:
            try:
                result = actions.perform(name, self.settings, run_id, *answers)
            except Exception as exc:  # the service's own error, shown instead of crashing the UI
                self._tell(f"{name} failed: {exc}", "error")
            else:
                self._tell(result or f"{name}: done", "information")

        threading.Thread(target=work, name=f"fpoctl-dash-{name}", daemon=True).start()

    def _tell(self, message: str, severity: SeverityLevel) -> None:
        """Notify from a worker thread (nothing once the app has exited)."""
        if not self.is_running:  # the app is gone: nobody to tell
            return
        with contextlib.suppress(RuntimeError):  # it closed just now
            self.call_from_thread(self.notify, message, severity=severity)
