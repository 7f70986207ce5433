"""The fixed-resource report: the same memory cap and training-time budget for every optimizer.

In this track each trial's model size and batch (a rung of the workload's ladder) were drawn by the
search like any hyperparameter, so choosing them cost tuning budget. Per submission:

    feasible      = trials that ended normally with measured peak <= cap (not `over_budget`)
    best within   = max over feasible trials of the best metric the trial's curve had reached by
                    the time budget (training seconds; min for loss-like metrics)
    largest fit   = the largest model (parameters) among the trials whose peak stayed under the cap

The cap is enforced on GPUs through the allocator's memory fraction (an out-of-memory there is
`over_budget` too); on CPU the measured peak is compared with it after the trial.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from harness.errors import UsageError
from harness.trial import FAULTS, TrialStatus
from reports import figures, frames
from reports.page import Figure, Section, Table

__all__ = ["fixed_resource_section"]

_MIB = 2**20
_NO_RESULT = FAULTS | {TrialStatus.DIVERGED}


def _budget(trials: pd.DataFrame, workload: str) -> tuple[float | None, float]:
    """(memory cap bytes, time budget s) the trials' rulesets recorded; they must agree."""
    recorded = {
        (r.get("memory_cap_bytes"), r.get("time_budget_s"))
        for r in (json.loads(str(t)) for t in trials["ruleset_json"])
    }
    if len(recorded) != 1:
        raise UsageError(
            f"fixed-resource trials of {workload} record different budgets "
            f"{sorted(map(str, recorded))}: they do not compare"
        )
    cap, seconds = recorded.pop()
    if seconds is None:
        raise UsageError(f"fixed-resource trials of {workload} record no time_budget_s")
    return (None if cap is None else float(cap)), float(seconds)


def _ladder(trials: pd.DataFrame) -> list[str]:
    """The scales the search could choose from (recorded in the ruleset; else those it chose)."""
    recorded = json.loads(str(trials["ruleset_json"].iloc[0])).get("ladder")
    return [str(s) for s in recorded] if recorded else sorted(trials["scale"].astype(str).unique())


def fixed_resource_section(trials: pd.DataFrame, evals: pd.DataFrame, workload: str) -> Section:
    """One workload's fixed-resource comparison (`trials`: its fixed-resource trials, one class)."""
    cap, seconds = _budget(trials, workload)
    minimize = frames.minimizes(trials)
    metric = str(trials["target_metric"].iloc[0])
    colour = figures.colours(trials["submission"].unique())
    over = trials["status"] == TrialStatus.OVER_BUDGET
    if cap is not None:
        over |= trials["peak_bytes"].astype(float) > cap
    ok = ~over & ~trials["status"].isin(_NO_RESULT)
    curves = frames.curves(evals, trials["trial_id"], metric)
    within = pd.Series(
        [
            frames.value_within(curves[tid], "train_time_s", seconds, minimize)
            for tid in trials["trial_id"]
        ],
        index=trials.index,
        dtype=float,
    )
    scored = trials.assign(within=within, over=over, ok=ok)
    rows = {}
    for name, group in scored.groupby("submission", sort=True):
        feasible = group[group["ok"] & np.isfinite(group["within"])]
        fits = group[~group["over"] & group["num_params"].notna()]
        best = (
            feasible.loc[feasible["within"].idxmin() if minimize else feasible["within"].idxmax()]
            if len(feasible)
            else None
        )
        largest = fits.loc[fits["num_params"].astype(float).idxmax()] if len(fits) else None
        rows[name] = {
            "trials": len(group),
            "over budget": int(group["over"].sum()),
            f"best {metric} within budget": np.nan if best is None else float(best["within"]),
            "best trial's rung": "—" if best is None else str(best["scale"]),
            "its batch": np.nan if best is None else float(best["batch_size"]),
            "its params": np.nan if best is None else float(best["num_params"]),
            "largest model that fits (params)": np.nan
            if largest is None
            else float(largest["num_params"]),
            "its rung": "—" if largest is None else str(largest["scale"]),
        }
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("submission")
    cap_text = "no memory cap" if cap is None else f"memory cap {cap / _MIB:,.0f} MiB"
    paragraphs = [
        f"Budget: {cap_text}, {seconds:g} training seconds per trial (trained to it, not stopped "
        "at the target). Each submission's search chose model size and batch from the ladder "
        f"({', '.join(_ladder(trials))}) as part of its tuning budget.",
    ]
    figs = [
        Figure(
            f"{workload}-resource-metric-vs-size",
            f"{workload}: best {metric} within the time "
            "budget per model size, the best over its batches (trials under the cap only)",
            figures.scatter_with_fits(
                _per_rung(scored[scored["ok"]], minimize),
                {},
                title=f"{workload}: best {metric} within budget vs size",
                xlabel="parameters",
                ylabel=metric,
                colour=colour,
                logy=False,
            ),
        ),
        Figure(
            f"{workload}-resource-memory-vs-size",
            f"{workload}: measured peak memory vs model size, every trial; dashed: the cap",
            figures.scatter_with_fits(
                pd.DataFrame(
                    {
                        "submission": trials["submission"],
                        "x": trials["num_params"].astype(float),
                        "y": trials["peak_bytes"].astype(float) / _MIB,
                    }
                ).dropna(),
                {},
                title=f"{workload}: peak memory vs size",
                xlabel="parameters",
                ylabel="peak MiB",
                colour=colour,
                logy=False,
                reference_line=None if cap is None else cap / _MIB,
            ),
        ),
    ]
    return Section(
        f"{workload}: fixed resource",
        paragraphs=paragraphs,
        figures=figs,
        tables=[
            Table(
                f"{workload}-fixed-resource",
                f"{workload}: best result within the budget and the largest model that fits",
                table,
            )
        ],
    )


def _per_rung(trials: pd.DataFrame, minimize: bool) -> pd.DataFrame:
    """Per (submission, model size): the best within-budget value over its trials (any batch)."""
    finite = trials[np.isfinite(trials["within"]) & trials["num_params"].notna()]
    agg = "min" if minimize else "max"
    grouped = finite.groupby(["submission", "num_params"])["within"].agg(agg)
    return (
        grouped.rename("y").reset_index().rename(columns={"num_params": "x"}).astype({"x": float})
    )
