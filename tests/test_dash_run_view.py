"""The run screen per kind of run, on a real seeded store driven by Textual's pilot: an FPO run
with the Q-ensemble, a value-critic run, an SFT run; the header (overrides, init chain, success
arc, phase); panels that share one x range and stay readable at 120x40 and 80x24."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from fpoctl.dash import names as n
from fpoctl.dash.screens.run import RunScreen
from fpoctl.dash.widgets.metric_panel import MetricPanel
from fpoctl.dash.widgets.metric_plot import MetricPlot
from fpoctl.store import Store
from tests.dash_pilot import drive, make_app, wait_for
from tests.seed_store import seed_kinds, seed_runs


@pytest.fixture
def seeded(store: Store) -> dict[str, int]:
    """The five seeded runs plus an SFT run and a value-critic run, name -> id."""
    return {**seed_runs(store), **seed_kinds(store)}


def panels(screen: RunScreen) -> dict[str, MetricPanel]:
    """The run screen's metric panels by id."""
    return {p.id: p for p in screen.query(MetricPanel)}


def header(screen: RunScreen) -> str:
    """The header's plain text."""
    return screen.query_one("#run-header").plain


def test_fpo_run_with_q_ensemble(store, settings, seeded) -> None:
    app = make_app(store, settings, run_id=seeded["pi0-libero-spatial"])

    async def scenario(pilot: Pilot) -> None:
        screen = app.screen
        assert list(panels(screen)) == ["success-panel", "return-panel", "critic-panel", "ratio-panel",
                                        "fpo-panel", "perf-panel"]
        critic = panels(screen)["critic-panel"]
        assert critic.border_title == "Q-ensemble"
        band = critic.plot.band
        assert band is not None and band.label.startswith("±std")  # the shaded band, in the legend
        mean, std = screen.curves[n.Q_MEAN], screen.curves[n.Q_STD]
        assert band.hi[-1] == pytest.approx(mean.y[-1] + std.y[-1])
        assert "█ ±std" in critic.border_subtitle
        success = panels(screen)["success-panel"].plot
        assert [(ln.label.split()[0], ln.points) for ln in success.lines] == [("rollout", False),
                                                                            ("eval", True)]
        text = header(screen)
        assert "eval success: prior 19% → best 99% → last 97%  (12 evaluations)" in text
        assert "init: pulled pi0 (lerobot/pi0_base)" in text
        overrides = text.splitlines()[-1]
        assert overrides == ("overrides: actor_lr=1e-05  critic=q_ensemble  critic_lr=0.0001  "
                             "gamma=0.995  eval_every=10  eval_episodes=50")
        assert "…" not in text and "clip_eps" not in text  # defaults are not overrides

    drive(app, scenario)


def test_ratio_max_does_not_flatten_ratio_mean(store, settings, seeded) -> None:
    app = make_app(store, settings, run_id=seeded["pi0-libero-spatial"])

    async def scenario(pilot: Pilot) -> None:
        ratio = panels(app.screen)["ratio-panel"]
        assert [ln.label.split()[0] for ln in ratio.plot.lines] == ["mean"]
        span = max(ratio.plot.lines[0].y) - min(ratio.plot.lines[0].y)
        assert span < 0.05  # the mean's own scale: ratio max (~1.1) would squash it to a line
        assert "max 1." in ratio.border_subtitle  # its newest value is still named

    drive(app, scenario)


def test_panels_share_one_x_range(store, settings, seeded) -> None:
    app = make_app(store, settings, run_id=seeded["pi0-libero-spatial"])

    async def scenario(pilot: Pilot) -> None:
        plots = list(app.screen.query(MetricPlot))
        assert len(plots) == 5 and {p.xlim for p in plots} == {(0.0, 120 * 2048.0)}

    drive(app, scenario)


def test_value_critic_run_shows_its_critic_not_an_empty_q_ensemble(store, settings, seeded) -> None:
    app = make_app(store, settings, run_id=seeded["mlp-value-reach"])

    async def scenario(pilot: Pilot) -> None:
        screen = app.screen
        critic = panels(screen)["critic-panel"]
        assert critic.border_title == "value critic" and critic.plot.band is None
        assert [ln.label.split()[0] for ln in critic.plot.lines] == ["explained"]
        assert critic.table is not None and set(critic.table.curves) == {n.Q_MEAN, n.CRITIC_LOSS}
        assert "Q-ensemble" not in {p.border_title for p in panels(screen).values()}
        assert "waiting for data" not in str(critic.plot.render())
        assert f"init: run {seeded['fast-reach-sft']} fast-reach-sft (sft)" in header(screen)

    drive(app, scenario)


def test_sft_run_has_its_own_view(store, settings, seeded) -> None:
    app = make_app(store, settings, run_id=seeded["fast-reach-sft"])

    async def scenario(pilot: Pilot) -> None:
        screen = app.screen
        assert list(panels(screen)) == ["loss-panel", "sft-panel"]
        loss = panels(screen)["loss-panel"]
        assert loss.plot.x_label == "step" and len(loss.plot.lines[0].y) == 40
        assert "━ loss 0.08068" in loss.border_subtitle
        table = panels(screen)["sft-panel"].table
        assert table is not None and table.curves[n.EVAL_SUCCESS].last == 0.62
        text = header(screen)
        assert "step 2000/2000" in text and "final success 62%" in text and "iter" not in text
        assert "overrides: expert_episodes=40  lr=0.0003" in text
        assert "init: a fresh policy" in text

    drive(app, scenario)


def test_phase_shows_in_the_header(store, settings, seeded) -> None:
    rid = seeded["pi0-libero-spatial"]
    store.update_run(rid, phase="evaluating the prior 12/50 (1.4/s)")
    app = make_app(store, settings, run_id=rid)

    async def scenario(pilot: Pilot) -> None:
        assert "now: evaluating the prior 12/50 (1.4/s)" in header(app.screen)
        store.update_run(rid, phase=None)
        await wait_for(pilot, lambda: "now:" not in header(app.screen))

    drive(app, scenario)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
@pytest.mark.parametrize("run", ["pi0-libero-spatial", "mlp-value-reach", "fast-reach-sft"])
def test_every_panel_is_readable(store, settings, seeded, run, size) -> None:
    """Every plot gets rows and columns enough to read (at 80x24 the panels scroll, each one
    whole at a time); tables show every row."""
    app = make_app(store, settings, run_id=seeded[run])

    async def scenario(pilot: Pilot) -> None:
        screen = app.screen
        await pilot.pause(0.2)
        for panel in panels(screen).values():
            if panel.plot is not None:
                assert panel.plot.size.height >= 6 and panel.plot.size.width >= 30, (panel.id, size)
            if panel.table is not None:
                assert panel.table.size.height >= len(panel.table.keys) + 1, (panel.id, size)
            assert panel.size.height <= screen.query_one("#panels").size.height, (panel.id, size)
        first = next(iter(panels(screen).values()))
        assert first.region.bottom <= size[1] - 1  # the first panel shows whole below the header

    drive(app, scenario, size=size)
