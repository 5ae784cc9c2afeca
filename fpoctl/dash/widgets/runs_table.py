"""The runs table: one row per run, sortable by any column, filterable by text, markable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from fpoctl.dash.data import RunInfo
from fpoctl.dash.widgets.run_header import STATUS_STYLE
from fpoctl.fmt import duration, number, percent

# column key -> (header, sort key)
COLUMNS: dict[str, tuple[str, Callable[[RunInfo], Any]]] = {
    "id": ("id", lambda r: r.id),
    "name": ("name", lambda r: r.name.lower()),
    "task": ("task", lambda r: r.task),
    "policy": ("policy", lambda r: r.policy),
    "status": ("status", lambda r: r.status),
    "iter": ("iter", lambda r: r.step),
    "env_steps": ("env steps", lambda r: r.env_steps),
    "success": ("success", lambda r: r.success),
    "best": ("best", lambda r: r.best_success),
    "return": ("return", lambda r: r.ret),
    "elapsed": ("elapsed", lambda r: r.elapsed),
    "eta": ("ETA", lambda r: r.eta),
}
RIGHT = {"id", "iter", "env_steps", "success", "best", "return", "elapsed", "eta"}
NARROW_HIDDEN = ("task", "policy", "env_steps", "elapsed")
NARROW_BELOW = 120
"""Below this many columns the table drops NARROW_HIDDEN so the numbers that matter fit."""


def cells(run: RunInfo, marked: bool, columns: list[str]) -> tuple[str | Text, ...]:
    """The table cells of one run, for `columns`."""
    it = f"{run.step}/{run.total_steps}" if run.total_steps else str(run.step)
    values = {
        "id": ("● " if marked else "") + str(run.id), "name": run.name, "task": run.task or "-",
        "policy": run.policy or "-", "status": Text(run.status, style=STATUS_STYLE.get(run.status, "")),
        "iter": it, "env_steps": number(run.env_steps), "success": percent(run.success),
        "best": percent(run.best_success), "return": number(run.ret),
        "elapsed": duration(run.elapsed), "eta": duration(run.eta),
    }
    return tuple(
        Text(v, justify="right") if isinstance(v, str) and key in RIGHT else v
        for key, v in values.items() if key in columns
    )


def matches(run: RunInfo, query: str) -> bool:
    """Every word of `query` appears (case-insensitive) in the run's id, name, task, policy or status."""
    hay = f"{run.id} {run.name} {run.task} {run.policy} {run.status}".lower()
    return all(word in hay for word in query.lower().split())


class RunsTable(DataTable):
    """Rows keyed by run id; refreshing keeps the cursor on the same run."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.runs: list[RunInfo] = []
        self.query_text = ""
        self.sort_column, self.sort_reverse = "id", True
        self.marked: set[int] = set()
        self.column_keys: list[str] = []
        self._shown: dict[str, tuple[str | Text, ...]] = {}

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "open")]

    def on_resize(self) -> None:
        narrow = self.size.width < NARROW_BELOW
        keys = [k for k in COLUMNS if not (narrow and k in NARROW_HIDDEN)]
        if keys != self.column_keys:
            self.column_keys = keys
            self.clear(columns=True)
            for key in keys:
                self.add_column(COLUMNS[key][0], key=key)
            self._refill(force=True)

    # -- what the screen calls ----------------------------------------------------------
    def set_runs(self, runs: list[RunInfo]) -> None:
        """New data from the reader."""
        self.runs = runs
        self.marked &= {r.id for r in runs}
        self._refill()

    def set_query(self, text: str) -> None:
        """Show only runs matching `text`."""
        self.query_text = text
        self._refill()

    def sort_by(self, column: str) -> None:
        """Sort by `column`; the same column again flips the order."""
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, column not in ("name", "task", "policy", "status")
        self._refill()

    def next_sort(self) -> None:
        """Sort by the next column."""
        keys = list(COLUMNS)
        self.sort_by(keys[(keys.index(self.sort_column) + 1) % len(keys)])

    def toggle_mark(self) -> None:
        """Mark or unmark the run under the cursor (for compare)."""
        rid = self.current_run_id
        if rid is not None:
            self.marked ^= {rid}
            self._refill(force=True)

    @property
    def current_run_id(self) -> int | None:
        """The run under the cursor."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    @property
    def shown_runs(self) -> list[RunInfo]:
        """Rows shown, in order."""
        rows = [r for r in self.runs if matches(r, self.query_text)]
        sort_key = COLUMNS[self.sort_column][1]
        present = sorted((r for r in rows if sort_key(r) is not None), key=sort_key,
                         reverse=self.sort_reverse)
        return present + [r for r in rows if sort_key(r) is None]  # blanks last either way

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    @property
    def sort_description(self) -> str:
        """E.g. 'by success ▼'."""
        return f"by {COLUMNS[self.sort_column][0]} {'▼' if self.sort_reverse else '▲'}"

    # -- internals ----------------------------------------------------------------------
    def _refill(self, force: bool = False) -> None:
        if not self.column_keys:
            return  # not laid out yet: on_resize fills the table
        rows = {str(r.id): cells(r, r.id in self.marked, self.column_keys) for r in self.shown_runs}
        if not force and list(rows) == list(self._shown):
            for key, new in rows.items():
                for col, old_cell, new_cell in zip(self.column_keys, self._shown[key], new, strict=True):
                    if old_cell != new_cell:
                        self.update_cell(key, col, new_cell, update_width=True)
        else:
            current = self.current_run_id
            self.clear()
            for key, row in rows.items():
                self.add_row(*row, key=key)
            if current is not None and str(current) in rows:
                self.move_cursor(row=self.get_row_index(str(current)), animate=False)
        self._shown = rows
