"""A list to pick one metric from (the compare screen's `m`)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option


class PickScreen(ModalScreen[str | None]):
    """Pick one of (key, label): enter returns the key, escape None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    PickScreen { align: center middle; }
    PickScreen > OptionList { width: 50; max-width: 95%; height: auto; max-height: 90%;
                              border: round $accent; background: $surface; }
    """

    def __init__(self, title: str, choices: list[tuple[str, str]], current: str | None = None) -> None:
        super().__init__()
        self.title_text, self.choices, self.current = title, choices, current

    def compose(self) -> ComposeResult:
        options = OptionList(*(Option(text, id=key) for key, text in self.choices))
        options.border_title = self.title_text
        keys = [key for key, _ in self.choices]
        if self.current in keys:
            options.highlighted = keys.index(self.current)
        yield options

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Return the chosen key."""
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close without a choice."""
        self.dismiss(None)
