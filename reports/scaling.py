"""The scaling study: how each optimizer's tuned learning rate and its speedup move with model size.

The trials are one sweep per rung of a workload's ladder (`optbench scaling`, trained to the
budget so final metrics are not censored at the target). Per submission and rung r with N_r
parameters (median over its trials):

    lr*_r        = the vertex of a quadratic fit of the final metric against log lr over the
                   finished trials within a decade of the best one (the best trial's lr when the
                   fit is not convex, has < 3 distinct lrs, or its vertex leaves the tried range)
    lr*(N)       ~ A · N^alpha           (least squares on log lr* vs log N over the rungs)
    speedup_r    = reference's median steps to target / the submission's   (bootstrap 95% CI)
    D_eff/D _r   = data equivalence at rung r (`reports.stats.data_equivalence`): defined even
                   where the reference never reaches the target
    trend        = slope of log speedup (else of log D_eff/D) vs log N: > 0, the advantage grows

A trend from a few small rungs is a hint, not a law; the section says over which sizes it holds.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from harness.errors import UsageError
from harness.trial import FINISHED
from reports import figures, frames, stats
from reports.page import Figure, Section, Table

__all__ = ["ladder_trials", "scaling_section", "tuned_lr"]

_BATCH_VARIANT = re.compile(r"-b\d+$")


def ladder_trials(trials: pd.DataFrame, workload: str, base_scale: str) -> pd.DataFrame:
    """The fixed-model trials of `workload` on the rungs of its `base_scale` ladder."""
    scale = trials["scale"].astype(str)
    rung = scale.str.startswith(f"{base_scale}-") & ~scale.str.contains(_BATCH_VARIANT)
    chosen = trials[(trials["workload"] == workload) & rung]
    return chosen[frames.track_of(chosen) == "fixed-model"]


def _finished(trials: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The finished trials' lr and final metric signed so lower is better, both finite."""
    done = trials[trials["status"].isin(FINISHED)]
    lr = frames.hparam(done, "lr")
    metric = done["final_metric"].astype(float) * (1.0 if frames.minimizes(trials) else -1.0)
    ok = np.isfinite(lr) & (lr > 0) & np.isfinite(metric)
    return lr[ok], metric[ok]


def tuned_lr(trials: pd.DataFrame) -> float:
    """lr* of one submission at one rung (see the module docstring); nan without usable trials."""
    lr, metric = _finished(trials)
    if lr.empty:
        return float("nan")
    x, y = np.log(lr.to_numpy()), metric.to_numpy()
    best = x[np.argmin(y)]
    near = np.abs(x - best) <= np.log(10.0)
    if len(np.unique(x[near])) >= 3:
        curvature, slope, _ = np.polyfit(x[near], y[near], 2)
        if curvature > 0:
            vertex = -slope / (2 * curvature)
            if x[near].min() <= vertex <= x[near].max():
                return float(np.exp(vertex))
    return float(np.exp(best))


def _per_submission(found: list[tuple[str, str]], what: str) -> list[str]:
    """One caveat per submission: `what`, at the rungs listed."""
    rungs: dict[str, list[str]] = {}
    for sub, where in found:
        rungs.setdefault(sub, []).append(where)
    return [f"{sub}: {what} — at {', '.join(at)}" for sub, at in sorted(rungs.items())]


def _edge_of_range(trials: pd.DataFrame) -> str:
    """Where the best finished trial's lr (by final metric) sits in the lrs tried (`frames`)."""
    lr, metric = _finished(trials)
    if lr.empty:
        return ""
    return frames.edge_of_range(frames.hparam(trials, "lr"), float(lr.loc[metric.idxmin()]))


def _power_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """(alpha, A) of y = A · x^alpha by least squares in log-log; None below 2 distinct sizes."""
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if len(np.unique(x[keep])) < 2:
        return None
    alpha, log_a = np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)
    return float(alpha), float(np.exp(log_a))


def scaling_section(
    trials: pd.DataFrame,
    evals: pd.DataFrame,
    workload: str,
    base_scale: str,
    reference: str,
    n_boot: int = 2000,
) -> Section:
    """Optimal LR vs size (power-law fits) and speedup vs size for one ladder,
    one hardware class."""
    rungs = ladder_trials(trials, workload, base_scale)
    if rungs["scale"].nunique() < 2:
        raise UsageError(
            f"scaling {workload}@{base_scale}: trials on {rungs['scale'].nunique()} "
            "rung(s); a scaling study needs at least 2 (run `optbench scaling`)"
        )
    colour = figures.colours(rungs["submission"].unique())
    size = rungs.groupby("scale")["num_params"].median().astype(float)
    best_lr = pd.DataFrame(
        [
            {"submission": sub, "scale": scale, "lr*": tuned_lr(group)}
            for (sub, scale), group in rungs.groupby(["submission", "scale"])
        ]
    )
    edges = [
        (sub, f"{scale} ({edge})")
        for (sub, scale), group in rungs.groupby(["submission", "scale"])
        if (edge := _edge_of_range(group))
    ]
    caveats = _per_submission(
        edges,
        "the best trial's lr is at the end of the lrs tried, so the "
        "optimum may lie outside the search space (under-tuned)",
    )
    best_lr["params"] = best_lr["scale"].map(size)
    speed, equivalence = [], []
    for scale, group in rungs.groupby("scale"):
        if reference not in set(group["submission"]):
            continue
        s = stats.reference_speedups(group, reference, quantity="steps_to_target", n_boot=n_boot)
        speed.append(s.reset_index().assign(scale=scale, params=size[scale]))
        if (group["target_direction"] == "min").all():
            e = stats.data_equivalence(group, evals, reference)
            equivalence.append(e.reset_index().assign(scale=scale, params=size[scale]))
    speedups = pd.concat(speed, ignore_index=True) if speed else pd.DataFrame()
    equivalent = pd.concat(equivalence, ignore_index=True) if equivalence else pd.DataFrame()
    lr_fits, table_rows = {}, {}
    grid = np.geomspace(size.min(), size.max(), 20)
    for name, group in best_lr.groupby("submission", sort=True):
        fit = _power_fit(group["params"].to_numpy(float), group["lr*"].to_numpy(float))
        trend = None
        for frame, column in ((speedups, "speedup"), (equivalent, "ratio")):
            if trend is None and not frame.empty and name != reference:
                mine = frame[frame["submission"] == name]
                trend = _power_fit(mine["params"].to_numpy(float), mine[column].to_numpy(float))
        if fit is not None:
            lr_fits[name] = (grid, fit[1] * grid ** fit[0], f"{name}: lr* ∝ N^{fit[0]:.2f}")
        table_rows[name] = {
            "lr* exponent alpha": np.nan if fit is None else fit[0],
            "lr* at smallest": float(group.sort_values("params")["lr*"].iloc[0]),
            "lr* at largest": float(group.sort_values("params")["lr*"].iloc[-1]),
            "advantage trend (d log s / d log N)": np.nan if trend is None else trend[0],
        }
    figs = [
        Figure(
            f"{workload}-{base_scale}-scaling-lr",
            f"{workload}: tuned learning rate vs "
            "parameters per submission, with least-squares power laws",
            figures.scatter_with_fits(
                best_lr.rename(columns={"params": "x", "lr*": "y"}),
                lr_fits,
                title=f"{workload}: optimal LR vs size",
                xlabel="parameters",
                ylabel="tuned learning rate",
                colour=colour,
            ),
        )
    ]
    if not speedups.empty:
        points = speedups[speedups["submission"] != reference].rename(
            columns={"params": "x", "speedup": "y", "ci_low": "lo", "ci_high": "hi"}
        )
        points = points[np.isfinite(points["y"]) & (points["y"] > 0)]
        if not points.empty:
            figs.append(
                Figure(
                    f"{workload}-{base_scale}-scaling-speedup",
                    f"{workload}: steps-to-"
                    f"target speedup over {reference} vs parameters (bootstrap 95% CI)",
                    figures.scatter_with_fits(
                        points[["submission", "x", "y", "lo", "hi"]],
                        {},
                        title=f"{workload}: speedup vs size",
                        xlabel="parameters",
                        ylabel="speedup",
                        colour=colour,
                        logy=False,
                        reference_line=1.0,
                    ),
                )
            )
    if not equivalent.empty:
        points = equivalent[equivalent["submission"] != reference].rename(
            columns={"params": "x", "ratio": "y"}
        )
        points = points[np.isfinite(points["y"]) & (points["y"] > 0)]
        if not points.empty:
            figs.append(
                Figure(
                    f"{workload}-{base_scale}-scaling-equivalence",
                    f"{workload}: data "
                    f"equivalence D_eff/D against {reference} vs parameters (> 1: the "
                    f"submission's final loss would take {reference} more tokens)",
                    figures.scatter_with_fits(
                        points[["submission", "x", "y"]],
                        {},
                        title=f"{workload}: data equivalence vs size",
                        xlabel="parameters",
                        ylabel="D_eff / D",
                        colour=colour,
                        reference_line=1.0,
                    ),
                )
            )
    summary = pd.DataFrame.from_dict(table_rows, orient="index").rename_axis("submission")
    per_rung = best_lr.pivot(index="scale", columns="submission", values="lr*")
    per_rung.insert(0, "params", size)
    per_rung = per_rung.sort_values("params")
    paragraphs = [
        f"Rungs: {', '.join(per_rung.index)} ({size.min():,.0f} to {size.max():,.0f} "
        f"parameters). Speedups are in steps to target against {reference}, so they "
        "compare across hardware; where the reference never reaches the target, data "
        "equivalence still compares final losses. A positive trend means the advantage "
        "grows with size over this range only. Tuned LR: the vertex of a quadratic fit "
        "of the final metric against log lr near the best trial."
    ]
    tables = [
        Table(
            f"{workload}-{base_scale}-scaling",
            f"{workload}: LR exponent and speedup trend per submission",
            summary,
        ),
        Table(f"{workload}-{base_scale}-scaling-lr", f"{workload}: tuned LR per rung", per_rung),
    ]
    if not speedups.empty:
        spd = speedups.pivot(index="scale", columns="submission", values="speedup")
        spd.insert(0, "params", size)
        tables.append(
            Table(
                f"{workload}-{base_scale}-scaling-speedup",
                f"{workload}: steps-to-target speedup over {reference} per rung",
                spd.sort_values("params"),
            )
        )
    if not equivalent.empty:
        far = equivalent[
            equivalent["note"].astype(str).str.contains("extrapolated")
            | np.isinf(equivalent["ratio"].astype(float))
        ]
        caveats += _per_submission(
            [(r.submission, str(r.scale)) for r in far.itertuples()],
            "D_eff lies beyond the reference's own data, extrapolated "
            "from its fit (∞: below the fit's irreducible loss)",
        )
        eq = equivalent.pivot(index="scale", columns="submission", values="ratio")
        eq.insert(0, "params", size)
        tables.append(
            Table(
                f"{workload}-{base_scale}-scaling-equivalence",
                f"{workload}: data equivalence D_eff/D against {reference} per rung",
                eq.sort_values("params"),
            )
        )
    return Section(
        f"{workload}@{base_scale}: scaling",
        paragraphs=paragraphs,
        caveats=caveats,
        figures=figs,
        tables=tables,
    )
