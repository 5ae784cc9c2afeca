"""The s/r/p keys shared by screens that show a run: greyed out in the footer while the
feature behind them is missing (the App then explains on a press), otherwise acting on it."""

from __future__ import annotations

from textual.binding import Binding

from fpoctl.dash.actions import ACTIONS

RUN_BINDINGS = [Binding(name[0], f"act('{name}')", name) for name in ACTIONS]
"""Add to a screen's BINDINGS; the screen defines `current_run_id`."""

UNAVAILABLE_BINDINGS = [Binding(name[0], f"unavailable('{name}')", show=False) for name in ACTIONS]
"""Add to the App's BINDINGS: they fire only when the screen's binding is disabled."""


class RunKeys:
    """Mixin for a Screen with a current run: `act(name)` and its enabled state."""

    @property
    def current_run_id(self) -> int | None:
        """The run the keys act on."""
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Disable (grey out) actions whose feature is not installed yet."""
        if action == "act":
            return True if ACTIONS[str(parameters[0])].available else None
        return True

    def action_act(self, name: str) -> None:
        run_id = self.current_run_id
        if run_id is not None:
            self.app.act_on_run(name, run_id)  # type: ignore[attr-defined]
