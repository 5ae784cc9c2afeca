"""The runs screen: every run in a live table; open one, filter, mark and compare."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from fpoctl.dash.feeds import RunsFeed
from fpoctl.dash.messages import ReadFailed, RunsUpdated
from fpoctl.dash.screens.confirm import ConfirmScreen
from fpoctl.dash.screens.keys import RUN_BINDINGS, RunKeys
from fpoctl.dash.widgets.runs_table import RunsTable

MAX_COMPARED = 8

EMPTY = """[b]No runs in this store yet.[/b] Start one in another terminal:

  [cyan]fpoctl demo[/cyan]                       demos -> SFT prior -> FPO (CPU, minutes)
  [cyan]fpoctl finetune --task fast-goal[/cyan]  an FPO run ([cyan]fpoctl tasks[/cyan]: the tasks)
  [cyan]fpoctl sft --task fast-goal[/cyan]       behaviour cloning from an expert

It shows up here as soon as it starts.  [dim]? every key · q quit[/dim]"""
"""What the home shows while the store has no runs."""


class RunsScreen(RunKeys, Screen[None]):
    """The table of runs (the dashboard's home)."""

    AUTO_FOCUS = "#runs"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "filter"),
        Binding("space", "mark", "mark", show=False),
        Binding("c", "compare", "compare"),
        Binding("o", "sort", "sort", show=False),
        Binding("escape", "clear_filter", "clear filter", show=False),
        *RUN_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.loaded = False
        self._token: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunsTable(id="runs")
        yield Static(EMPTY, id="empty")
        yield Input(placeholder="filter: words in id, name, task, policy, status", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "runs"
        self._token = self.app.reader.subscribe(self, RunsFeed())

    def on_unmount(self) -> None:
        if self._token is not None:
            self.app.reader.unsubscribe(self._token)

    @property
    def table(self) -> RunsTable:
        """The runs table."""
        return self.query_one(RunsTable)

    def on_runs_updated(self, message: RunsUpdated) -> None:
        self.table.set_runs(message.runs)
        self.query_one("#empty").display = not message.runs
        self.table.display = bool(message.runs)
        if message.runs and self.focused is None:
            self.table.focus()
        self._describe()
        self.loaded = True

    def _describe(self) -> None:
        runs, table = self.table.runs, self.table
        running = sum(r.status == "running" for r in runs)
        shown = len(table.shown_runs)
        count = f"{shown} of {len(runs)} runs" if shown != len(runs) else f"{len(runs)} runs"
        marked = f" · {len(table.marked)} marked" if table.marked else ""
        self.sub_title = f"{count} · {running} running{marked} · {table.sort_description}"

    def on_read_failed(self, message: ReadFailed) -> None:
        self.app.report_read_error(message.error)

    # -- keys ---------------------------------------------------------------------------
    @property
    def current_run_id(self) -> int | None:
        """The run under the cursor."""
        return self.table.current_run_id

    @property
    def current_run_label(self) -> str:
        """How questions name the run under the cursor."""
        rid = self.table.current_run_id
        name = next((r.name for r in self.table.runs if r.id == rid), None)
        return f"run {rid}" + (f" ({name})" if name else "")

    @on(RunsTable.RowSelected)
    def _row_selected(self, event: RunsTable.RowSelected) -> None:
        self.app.open_run(int(str(event.row_key.value)))

    @on(RunsTable.HeaderSelected)
    def _header_selected(self) -> None:
        self._describe()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.table.set_query("")
        self._describe()
        self.table.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_query(event.value)
        self._describe()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.table.focus()

    def action_mark(self) -> None:
        self.table.toggle_mark()
        self._describe()

    def action_sort(self) -> None:
        self.table.next_sort()
        self._describe()

    def action_compare(self) -> None:
        """Compare the marked runs; with none marked, ask before comparing the runs shown."""
        table = self.table
        marked = [r.id for r in table.shown_runs if r.id in table.marked]
        if marked:
            self._compare(marked)
            return
        shown = [r.id for r in table.shown_runs]
        if not shown:
            self.notify("no runs to compare", severity="warning")
            return
        first = f"the first {MAX_COMPARED} of the {len(shown)}" if len(shown) > MAX_COMPARED else \
            f"the {len(shown)}"
        question = (f"No runs are marked (space marks the run under the cursor). Compare {first} "
                    "runs shown instead?")
        self.app.push_screen(ConfirmScreen(question), lambda yes: self._compare(shown) if yes else None)

    def _compare(self, ids: list[int]) -> None:
        if len(ids) > MAX_COMPARED:
            self.notify(f"comparing the first {MAX_COMPARED} (mark runs with space to choose)")
        self.app.open_compare(ids[:MAX_COMPARED])
