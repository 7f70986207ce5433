"""Reductions of the results store that every report shares: which trials a report compares, each
trial's eval curve, bands over seeds, and the value a curve had reached by a budget.

Conventions: a *group* is one (workload, scale); a trial's *track* is `fixed-resource` when its
ruleset says so and `fixed-model` otherwise; a study's *selected* trial is the one
`reports.scoring.selected_trials` picks (fastest to target, then fewest steps, then best metric).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pandas as pd

from harness.errors import UsageError

__all__ = [
    "band",
    "curves",
    "edge_of_range",
    "edge_in_most_studies",
    "groups",
    "hparam",
    "minimizes",
    "one_hardware_class",
    "track_of",
    "value_within",
]


def track_of(trials: pd.DataFrame) -> pd.Series:
    """`fixed-resource` or `fixed-model` per trial, from its recorded ruleset."""

    def track(text: object) -> str:
        try:
            return str(json.loads(str(text)).get("track", "fixed-model"))
        except (ValueError, AttributeError):
            return "fixed-model"

    return trials["ruleset_json"].map(track)


def hparam(trials: pd.DataFrame, name: str) -> pd.Series:
    """One hyperparameter per trial (nan where the trial's point lacks it or is not a number)."""

    def value(text: object) -> float:
        try:
            got = json.loads(str(text)).get(name)
        except (ValueError, AttributeError):
            return float("nan")
        return float(got) if isinstance(got, int | float) and not isinstance(got, bool) else np.nan

    return trials["hparams_json"].map(value).astype(float)


def edge_of_range(tried: pd.Series, chosen: float) -> str:
    """`largest` or `smallest` when `chosen` is that end of the values `tried` (at least 3 distinct
    values), else "": a tuned value at the edge means the optimum may lie outside the space."""
    values = tried.dropna().astype(float)
    if values.nunique() < 3 or not np.isfinite(chosen):
        return ""
    return "largest" if chosen >= values.max() else "smallest" if chosen <= values.min() else ""


def edge_in_most_studies(trials: pd.DataFrame, selected: pd.DataFrame, name: str = "lr") -> str:
    """The end of the values tried (`smallest`, `largest`, or "") at which most of one submission's
    studies selected their trial.

    Per study k: e_k = edge_of_range(values the study tried, value of its selected trial). An end
    counts when |{k : e_k = end}| > |studies| / 2 (both of two studies, two of three).
    With a handful of trials per study, the best one is an end draw of its own study about half the
    time by chance alone (a flat optimum); the same end in most studies is evidence the optimum lies
    beyond the values tried.

    Args:
      trials: every trial of the submission on one workload (with `study`, `hparams_json`).
      selected: its studies' selected trials.
      name: the hyperparameter.
    """
    if selected.empty:
        return ""
    ends: list[str] = []
    for study, row in selected.groupby("study"):
        tried = hparam(trials[trials["study"] == study], name)
        ends.append(edge_of_range(tried, float(hparam(row, name).iloc[0])))
    counts = pd.Series(ends).value_counts()
    found = [end for end in ("smallest", "largest") if counts.get(end, 0) * 2 > len(ends)]
    return found[0] if found else ""


def one_hardware_class(
    trials: pd.DataFrame, hardware_class: str | None, where: str
) -> pd.DataFrame:
    """The trials of one hardware class: wall-clock numbers compare only within one.

    Raises:
      UsageError: the trials mix classes and none was chosen, or the chosen one has no trials.
    """
    if hardware_class is not None:
        chosen = trials[trials["hardware_class"] == hardware_class]
        if chosen.empty:
            found = sorted(trials["hardware_class"].dropna().unique())
            raise UsageError(
                f"{where}: no trials of hardware class {hardware_class!r} "
                f"(found: {', '.join(found) or 'none'})"
            )
        return chosen
    classes = sorted(trials["hardware_class"].dropna().unique())
    if len(classes) > 1:
        raise UsageError(
            f"{where}: trials of several hardware classes ({', '.join(classes)}); "
            "wall-clock compares only within one: pass --hardware-class"
        )
    return trials


def groups(trials: pd.DataFrame) -> list[tuple[str, str]]:
    """The (workload, scale) pairs present, sorted."""
    pairs = trials[["workload", "scale"]].drop_duplicates().itertuples(index=False)
    return sorted((str(w), str(s)) for w, s in pairs)


def curves(evals: pd.DataFrame, trial_ids: Iterable[str], metric: str) -> dict[str, pd.DataFrame]:
    """Each trial's eval curve of `metric` (columns step, tokens, train_time_s, value; by step),
    read in one pass over `evals`; a trial without evals gets an empty curve."""
    columns = ["step", "tokens", "train_time_s", "value"]
    wanted = list(dict.fromkeys(trial_ids))
    rows = evals[(evals["metric"] == metric) & evals["trial_id"].isin(wanted)]
    found = {
        str(tid): group[columns].sort_values("step").reset_index(drop=True)
        for tid, group in rows.groupby("trial_id")
    }
    empty = pd.DataFrame(columns=columns)
    return {tid: found.get(tid, empty) for tid in wanted}


def minimizes(trials: pd.DataFrame) -> bool:
    """Whether the trials' target metric improves downwards (their first row's direction)."""
    return str(trials["target_direction"].iloc[0]) == "min"


def band(curves: list[pd.DataFrame], x: str, points: int = 60, log: bool = False) -> pd.DataFrame:
    """Median and inter-quartile band over curves of `value` against column `x`.

    Each curve is interpolated linearly onto a common grid spanning all curves. Before its first
    eval a curve contributes nothing; after its last it holds its last value (a trial that stopped
    at the target is done, and dropping it would make the median jump to the slower trials).
    Columns: x, median, lo (25%), hi (75%), n (curves that had started).
    """
    usable = [c[[x, "value"]].dropna() for c in curves]
    usable = [c[np.isfinite(c["value"].astype(float))] for c in usable]
    usable = [c for c in usable if len(c) >= 1]
    if not usable:
        return pd.DataFrame(columns=["x", "median", "lo", "hi", "n"])
    lo_x = min(float(c[x].min()) for c in usable)
    hi_x = max(float(c[x].max()) for c in usable)
    if log and lo_x > 0:
        grid = np.geomspace(lo_x, hi_x, points)
    else:
        grid = np.linspace(lo_x, hi_x, points)
    stacked = np.full((len(usable), len(grid)), np.nan)
    for i, c in enumerate(usable):
        xs, ys = c[x].to_numpy(float), c["value"].to_numpy(float)
        started = grid >= xs.min()
        stacked[i, started] = np.interp(grid[started], xs, ys)  # holds ys[-1] past the end
    counts = np.isfinite(stacked).sum(axis=0)
    keep = counts > 0
    with np.errstate(all="ignore"):
        frame = pd.DataFrame(
            {
                "x": grid[keep],
                "median": np.nanmedian(stacked[:, keep], axis=0),
                "lo": np.nanquantile(stacked[:, keep], 0.25, axis=0),
                "hi": np.nanquantile(stacked[:, keep], 0.75, axis=0),
                "n": counts[keep],
            }
        )
    return frame


def value_within(curve_frame: pd.DataFrame, column: str, budget: float, minimize: bool) -> float:
    """The best value a curve had reached by `budget` (of `column`, e.g. train_time_s); nan if none.

    The best, not the last, because a user stopping at the budget keeps the best checkpoint.
    """
    within = curve_frame[curve_frame[column] <= budget]["value"].astype(float)
    within = within[np.isfinite(within)]
    if within.empty:
        return float("nan")
    return float(within.min() if minimize else within.max())
