"""The `?` screen: every key of the screen behind it (also those the footer leaves out)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

KEY_NAMES = {"slash": "/", "question_mark": "?", "escape": "esc", "space": "space", "enter": "enter"}


def key_text(key: str) -> str:
    """A key as it is typed: "/" for slash, "?" for question_mark, "esc" for escape."""
    return KEY_NAMES.get(key, key)


def _declared(node: object) -> set[str]:
    """The keys a class declares in its own BINDINGS (not those Textual's bases add)."""
    keys: set[str] = set()
    for binding in type(node).BINDINGS:
        if isinstance(binding, Binding):
            keys.update(k.strip() for k in binding.key.split(","))
    return keys


def key_rows(screen: Screen) -> list[tuple[str, str]]:
    """(key, what it does) for each active binding of `screen`: the keys the screen, its focused
    widget and the app declare first, then Textual's generic ones (cursor, focus, copy)."""
    declared = [_declared(screen), _declared(screen.focused) if screen.focused else set(),
                _declared(screen.app)]

    def rank(key: str) -> int:
        return next((i for i, keys in enumerate(declared) if key in keys), len(declared))

    actives = sorted(screen.active_bindings.items(), key=lambda item: rank(item[0]))
    rows: dict[str, str] = {}
    for _, active in actives:
        binding = active.binding
        if binding.description and active.enabled:
            rows.setdefault(binding.key_display or key_text(binding.key), binding.description)
    return list(rows.items())


class HelpScreen(ModalScreen[None]):
    """A table of keys; escape or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark", "app.pop_screen", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 60; max-width: 95%; height: auto; max-height: 90%;
                                  border: round $accent; padding: 0 1; background: $surface; }
    """

    def __init__(self, behind: Screen) -> None:
        super().__init__()
        self.rows = key_rows(behind)
        self.behind_title = behind.sub_title or type(behind).__name__

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in self.rows:
            table.add_row(key, what)
        with VerticalScroll() as scroll:
            scroll.border_title = "keys"
            scroll.border_subtitle = "escape close"
            yield Static(table, id="keys")
