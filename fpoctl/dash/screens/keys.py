"""The s/r/p keys shared by screens that show a run: each acts on the screen's current run."""

from __future__ import annotations

from textual.binding import Binding

from fpoctl.dash.actions import ACTIONS

RUN_BINDINGS = [Binding(name[0], f"act('{name}')", name) for name in ACTIONS]
"""Add to a screen's BINDINGS; the screen defines `current_run_id` and `current_run_label`."""


class RunKeys:
    """Mixin for a Screen with a current run: `act(name)` on it."""

    @property
    def current_run_id(self) -> int | None:
        """The run the keys act on."""
        raise NotImplementedError

    @property
    def current_run_label(self) -> str:
        """How questions name that run, e.g. "run 3 (pi0-libero-spatial)"."""
        raise NotImplementedError

    def action_act(self, name: str) -> None:
        """Run action `name` on the current run (nothing when none is selected)."""
        run_id = self.current_run_id
        if run_id is not None:
            self.app.act_on_run(name, run_id, self.current_run_label)  # type: ignore[attr-defined]
