"""The dashboard App: owns the store reader, routes between screens, runs key actions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from fpoctl.dash import actions
from fpoctl.dash.reader import StoreReader
from fpoctl.dash.screens.ask import AskScreen
from fpoctl.dash.screens.compare import CompareScreen
from fpoctl.dash.screens.run import RunScreen
from fpoctl.dash.screens.runs import RunsScreen
from fpoctl.settings import Settings
from fpoctl.store import Store


class DashApp(App[None]):
    """`fpoctl dash`: runs table -> run -> compare, refreshed from the store about once a second."""

    CSS_PATH = Path(__file__).with_name("dash.tcss")
    TITLE = "fpoctl dash"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "quit")]

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

    def report_read_error(self, error: str) -> None:
        """Tell the user once per distinct error (the reader keeps retrying)."""
        if error != self._last_error:
            self._last_error = error
            self.notify(error, title="store", severity="error", timeout=8)

    def act_on_run(self, name: str, run_id: int) -> None:
        """Stop / resume / push a run in a worker thread (errors become notifications); an action
        that needs an answer (push: the repo) asks for it first."""
        question = actions.ACTIONS[name].asks
        if question is None:
            self._perform(name, run_id)
            return

        def answered(value: str | None) -> None:
            if value:
                self._perform(name, run_id, value)

        self.push_screen(AskScreen(question, "ORG/NAME"), answered)

    @work(thread=True, group="actions")
    def _perform(self, name: str, run_id: int, *answers: str) -> None:
        try:
            result = actions.perform(name, self.settings, run_id, *answers)
        except Exception as exc:  # the service's own error, shown instead of crashing the UI
            self.call_from_thread(self.notify, f"{name} failed: {exc}", severity="error")
        else:
            self.call_from_thread(self.notify, result or f"{name}: done")
