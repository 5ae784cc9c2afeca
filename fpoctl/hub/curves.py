"""The training-curves PNG committed with a pushed model: success rates and return against
environment steps (or iterations when env steps were not logged). Matplotlib, Agg backend."""

from __future__ import annotations

from pathlib import Path

from fpoctl.store import Store

SUCCESS_KEYS = ("rollout/success_rate", "eval/success_rate")
RETURN_KEY = "rollout/return"
X_KEY = "env/steps_total"


def plot_training_curves(store: Store, run_id: int, out: Path) -> bool:
    """Write the PNG; False (and no file) when the run logged none of the curves."""
    series = {k: store.series(run_id, k) for k in (*SUCCESS_KEYS, RETURN_KEY)}
    if not any(series.values()):
        return False
    env_steps = dict(store.series(run_id, X_KEY))
    use_env = bool(env_steps) and all(s in env_steps for pts in series.values() for s, _ in pts)
    xlabel = "environment steps" if use_env else "iteration"

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_success, ax_return = fig.subplots(1, 2)
    for key, style in zip(SUCCESS_KEYS, ("-", "o-"), strict=True):
        if series[key]:
            xs = [env_steps[s] if use_env else s for s, _ in series[key]]
            ax_success.plot(xs, [v for _, v in series[key]], style, label=key, markersize=3)
    ax_success.set(title="success rate", xlabel=xlabel, ylim=(-0.02, 1.02))
    if any(series[k] for k in SUCCESS_KEYS):
        ax_success.legend(loc="lower right")
    if series[RETURN_KEY]:
        xs = [env_steps[s] if use_env else s for s, _ in series[RETURN_KEY]]
        ax_return.plot(xs, [v for _, v in series[RETURN_KEY]], color="tab:green")
    ax_return.set(title=RETURN_KEY, xlabel=xlabel)
    for ax in (ax_success, ax_return):
        ax.grid(alpha=0.3)
    fig.savefig(out, format="png")
    return True
