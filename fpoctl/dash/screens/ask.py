"""A one-line question before an action that needs an argument (e.g. the Hub repo for push)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class AskScreen(ModalScreen[str | None]):
    """Ask for one value: enter returns it, escape returns None. The question wraps to fit."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    AskScreen { align: center middle; }
    AskScreen > Vertical { width: 70; max-width: 95%; height: auto; border: round $accent;
                           padding: 1 2; background: $surface; }
    AskScreen Label { width: 100%; }
    AskScreen #keys { color: $text-muted; }
    """

    def __init__(self, title: str, placeholder: str) -> None:
        super().__init__()
        self.title_text, self.placeholder = title, placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="question")
            yield Input(placeholder=self.placeholder)
            yield Label("enter: go · escape: cancel", id="keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Return the typed value (empty -> cancel)."""
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        """Close without a value."""
        self.dismiss(None)
