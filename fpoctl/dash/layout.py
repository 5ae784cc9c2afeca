"""Which panels the run screen shows for a run (plain data): an FPO run's success, return, critic
(Q-ensemble or value critic, after its config), ratio, FPO and performance panels; an SFT run's
loss curve and its numbers. Every layout ends with the events log."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fpoctl import metric_names as m
from fpoctl.dash import names as n
from fpoctl.fmt import number, percent

BLUE, GREEN, ORANGE, RED, PURPLE = "#4fc3f7", "#81c784", "#ffb74d", "#e57373", "#ba68c8"
BAND = "#3d6f8e"
"""The Q +-std band: a muted BLUE, drawn under the lines."""


@dataclass(frozen=True)
class Line:
    """One plotted metric: its colour, how the legend prints its newest value, and whether it is
    drawn as points (evaluations)."""

    key: str
    color: str
    fmt: Callable[[float | None], str] = number
    points: bool = False
    legend: str | None = None
    """What the legend calls it (short: a legend is one border line); None = its label."""


@dataclass(frozen=True)
class Panel:
    """A bordered panel: a table of metrics (newest, min, max, trend) and/or a plot."""

    id: str
    title: str
    lines: tuple[Line, ...] = ()
    table: tuple[str, ...] = ()
    ylim: tuple[float, float] | None = None
    band: tuple[str, str] | None = None
    """(mean key, std key): a shaded mean +-std band under the lines."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels that differ from `names.LABELS` in this panel (a value critic's "V mean")."""
    notes: tuple[Line, ...] = ()
    """Metrics the legend names with their newest value without plotting them (another scale)."""


SUCCESS = Panel("success-panel", "success rate",
                (Line(m.ROLLOUT_SUCCESS, GREEN, percent, legend="rollout"),
                 Line(m.EVAL_SUCCESS, BLUE, percent, points=True, legend="eval")),
                ylim=(0.0, 1.0))
RETURN = Panel("return-panel", "return", (Line(m.ROLLOUT_RETURN, ORANGE),))
Q_ENSEMBLE = Panel("critic-panel", "Q-ensemble",
                   (Line(m.Q_MEAN, BLUE, legend="mean"), Line(m.Q_MIN, ORANGE, legend="min")),
                   band=(m.Q_MEAN, m.Q_STD))
VALUE_CRITIC = Panel("critic-panel", "value critic", (Line(m.EXPLAINED_VARIANCE, BLUE),),
                     table=(m.Q_MEAN, m.CRITIC_LOSS), labels={m.Q_MEAN: "V mean"})
RATIO = Panel("ratio-panel", "FPO ratio", (Line(m.RATIO_MEAN, PURPLE, legend="mean"),),
              notes=(Line(m.RATIO_MAX, RED, legend="max"),))
FPO = Panel("fpo-panel", "FPO", table=n.FPO_TABLE)
PERF = Panel("perf-panel", "performance", (Line(m.PERF_ENV_STEPS_PER_S, GREEN, legend="env steps/s"),),
             table=n.PERF_TABLE)
SFT_LOSS = Panel("loss-panel", "SFT loss", (Line(m.SFT_LOSS, PURPLE, legend="loss"),))
SFT_NUMBERS = Panel("sft-panel", "behaviour cloning", table=n.SFT_TABLE)

EVENTS_ID = "events-panel"


def uses_q_ensemble(config: Mapping[str, Any], keys: set[str]) -> bool:
    """Whether a fine-tune's critic is the Q-ensemble: its config says so, or it logs Q std."""
    return config.get("critic") in ("q_ensemble", "q-ensemble") or m.Q_STD in keys


def panels_for(kind: str, config: Mapping[str, Any], keys: set[str]) -> tuple[Panel, ...]:
    """The panels (before the events log) of a run of `kind` with `config`, logging `keys`."""
    if kind == "sft":
        return SFT_LOSS, SFT_NUMBERS
    critic = Q_ENSEMBLE if uses_q_ensemble(config, keys) else VALUE_CRITIC
    return SUCCESS, RETURN, critic, RATIO, FPO, PERF


def layout_name(kind: str) -> str:
    """The CSS class of the panels container (`-sft` or `-fpo`): each has its own grid."""
    return "-sft" if kind == "sft" else "-fpo"
