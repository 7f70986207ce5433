"""Pareto frontiers between a cost and a result, one point per submission (per budget).

A point p dominates q when p is at least as good on both axes and better on one; the frontier is
the set of points nobody dominates. Three frontiers per workload:

- time to target vs peak memory (both lower is better);
- tokens to target (lower) vs throughput (higher);
- best metric reached within a wall-clock budget vs the budget: for budgets b on a log grid, the
  median over studies of the best metric any trial of the study had reached by b training seconds.

Each point is a submission's median over studies of its selected trials (see `reports.frames`);
submissions that never reached the target have no time- or tokens-to-target point, which the
section says.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports import figures, frames
from reports.page import Figure, Section, Table
from reports.scoring import selected_trials, target_medians

__all__ = ["pareto_mask", "pareto_section"]

_MIB = 2**20


def pareto_mask(
    x: np.ndarray, y: np.ndarray, x_lower: bool = True, y_lower: bool = True
) -> np.ndarray:
    """True for the points no other point dominates (non-finite points are never on it)."""
    sx = np.asarray(x, float) * (1 if x_lower else -1)
    sy = np.asarray(y, float) * (1 if y_lower else -1)
    finite = np.isfinite(sx) & np.isfinite(sy)
    on = finite.copy()
    for i in np.flatnonzero(finite):
        others = finite & (sx <= sx[i]) & (sy <= sy[i]) & ((sx < sx[i]) | (sy < sy[i]))
        on[i] = not others.any()
    return on


def pareto_section(trials: pd.DataFrame, evals: pd.DataFrame, workload: str, scale: str) -> Section:
    """The three frontiers of one (workload, scale) of one hardware class."""
    tag, ident = f"{workload}@{scale}", f"{workload}-{scale}"
    colour = figures.colours(trials["submission"].unique())
    chosen = selected_trials(trials)
    reached = chosen[chosen["time_to_target_s"].notna()]
    medians = target_medians(trials).droplevel("workload")  # one workload here
    per_sub = pd.DataFrame(
        {
            "time to target (s)": medians["time_to_target_s"],
            "tokens to target": medians["tokens_to_target"],
            "peak memory (MiB)": (chosen["peak_bytes"].astype(float) / _MIB)
            .groupby(chosen["submission"])
            .median(),
            "throughput (/s)": chosen["throughput_per_s"]
            .astype(float)
            .groupby(chosen["submission"])
            .median(),
        }
    ).rename_axis("submission")
    figs = []
    table = per_sub.copy()
    for xcol, ycol, x_lower, name in (
        ("peak memory (MiB)", "time to target (s)", True, "time-vs-memory"),
        ("throughput (/s)", "tokens to target", False, "tokens-vs-throughput"),
    ):
        mask = pareto_mask(per_sub[xcol].to_numpy(), per_sub[ycol].to_numpy(), x_lower=x_lower)
        table[f"on {name} frontier"] = mask
        points = pd.DataFrame(
            {
                "submission": per_sub.index,
                "x": per_sub[xcol].to_numpy(),
                "y": per_sub[ycol].to_numpy(),
                "on_frontier": mask,
            }
        )
        points = points[np.isfinite(points["x"]) & np.isfinite(points["y"])]
        if points.empty:
            continue
        figs.append(
            Figure(
                f"{ident}-pareto-{name}",
                f"{tag}: {ycol} vs {xcol}; filled: on the frontier, hollow: dominated",
                figures.pareto(
                    points,
                    title=f"{tag}: {ycol} vs {xcol}",
                    xlabel=xcol,
                    ylabel=ycol,
                    colour=colour,
                    x_lower=x_lower,
                ),
            )
        )
    budget_points = _budget_points(trials, evals)
    if not budget_points.empty:
        figs.append(
            Figure(
                f"{ident}-pareto-metric-vs-budget",
                f"{tag}: best metric reached within "
                "a training-time budget (median over studies of the best trial by "
                "then); labels are budgets in seconds",
                figures.pareto(
                    budget_points,
                    title=f"{tag}: metric vs wall-clock budget",
                    xlabel="training-seconds budget",
                    ylabel=str(trials["target_metric"].iloc[0]),
                    colour=colour,
                    logx=True,
                ),
            )
        )
    missing = sorted(set(per_sub.index) - set(reached["submission"]))
    caveats = (
        [f"{', '.join(missing)}: never reached the target, so no time- or tokens-to-target point"]
        if missing
        else []
    )
    return Section(
        f"{tag}: Pareto frontiers",
        figures=figs,
        caveats=caveats,
        tables=[Table(f"{ident}-pareto", f"{tag}: frontier coordinates", table)],
    )


def _budget_points(trials: pd.DataFrame, evals: pd.DataFrame, budgets: int = 6) -> pd.DataFrame:
    metric = str(trials["target_metric"].iloc[0])
    minimize = frames.minimizes(trials)
    times = trials["train_time_s"].astype(float)
    times = times[np.isfinite(times) & (times > 0)]
    if times.empty:
        return pd.DataFrame()
    grid = np.geomspace(max(times.min() / 4, 1e-3), times.max(), budgets)
    rows = []
    curves = frames.curves(evals, trials["trial_id"], metric)
    for (name, _study), study in trials.groupby(["submission", "study"]):
        for b in grid:
            values = [
                frames.value_within(curves[t], "train_time_s", b, minimize)
                for t in study["trial_id"]
            ]
            values = [v for v in values if np.isfinite(v)]
            if values:
                rows.append((name, b, min(values) if minimize else max(values)))
    frame = pd.DataFrame(rows, columns=["submission", "x", "y"])
    if frame.empty:
        return frame
    points = frame.groupby(["submission", "x"], as_index=False)["y"].median()
    points["on_frontier"] = pareto_mask(
        points["x"].to_numpy(), points["y"].to_numpy(), y_lower=minimize
    )
    points["label"] = [
        f"{b:.3g}s" if on else "" for b, on in zip(points["x"], points["on_frontier"], strict=True)
    ]
    return points
