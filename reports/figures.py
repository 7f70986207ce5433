"""The report figures, drawn with matplotlib's Agg backend into PNG bytes.

Each function takes tidy data already reduced by the report that calls it and draws one figure;
none reads the results store. A submission keeps its colour in every figure of a report
(`colours`), and every figure that has a target draws it as a dashed line.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = [
    "band_curves",
    "colours",
    "memory_bars",
    "pareto",
    "scatter_with_fits",
    "sensitivity",
]

_SIZE = (7.0, 4.2)


def colours(submissions: Sequence[str]) -> dict[str, str]:
    """A fixed colour per submission (sorted names over the tab10 / tab20 cycles)."""
    names = sorted(set(submissions))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: matplotlib.colors.to_hex(cmap(i % cmap.N)) for i, name in enumerate(names)}


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _target_line(ax: plt.Axes, target: float | None, horizontal: bool = True) -> None:
    if target is not None and np.isfinite(target):
        line = ax.axhline if horizontal else ax.axvline
        line(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")


def band_curves(
    curves: Mapping[str, pd.DataFrame],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    colour: Mapping[str, str],
    target: float | None = None,
    logx: bool = False,
    logy: bool = False,
    step: bool = False,
) -> bytes:
    """One line per submission (`median` over `x`) with a shaded band between `lo` and `hi`."""
    fig, ax = plt.subplots(figsize=_SIZE)
    for name, frame in curves.items():
        if step:
            ax.step(frame["x"], frame["median"], color=colour[name], label=name, where="post")
        else:
            ax.plot(frame["x"], frame["median"], color=colour[name], label=name)
        ax.fill_between(
            frame["x"],
            frame["lo"],
            frame["hi"],
            color=colour[name],
            alpha=0.18,
            linewidth=0,
            step="post" if step else None,
        )
    _target_line(ax, target)
    _finish(ax, title, xlabel, ylabel, logx, logy)
    return _png(fig)


def sensitivity(
    points: pd.DataFrame,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    colour: Mapping[str, str],
    target: float | None = None,
) -> bytes:
    """Final metric vs one hyperparameter (log x) per submission: trials as dots, the median per
    log-spaced bin as a line, diverged trials as crosses at the top of the axis."""
    fig, ax = plt.subplots(figsize=_SIZE)
    finite = points[np.isfinite(points["y"])]
    top = float(finite["y"].max()) if len(finite) else 1.0
    for name, group in points.groupby("submission", sort=True):
        ok = group[np.isfinite(group["y"]) & ~group["diverged"]]
        bad = group[group["diverged"] | ~np.isfinite(group["y"])]
        ax.scatter(ok["x"], ok["y"], s=14, alpha=0.55, color=colour[name])
        if len(bad):
            ax.scatter(bad["x"], np.full(len(bad), top), marker="x", color=colour[name])
        line = _binned_median(ok["x"].to_numpy(float), ok["y"].to_numpy(float))
        ax.plot(line[0], line[1], color=colour[name], label=name)
    _target_line(ax, target)
    _finish(ax, title, xlabel, ylabel, logx=True)
    return _png(fig)


def _binned_median(x: np.ndarray, y: np.ndarray, bins: int = 7) -> tuple[np.ndarray, np.ndarray]:
    if len(x) < 3:
        order = np.argsort(x)
        return x[order], y[order]
    edges = np.geomspace(x.min(), x.max() * (1 + 1e-9), bins + 1)
    which = np.digitize(x, edges) - 1
    keep = [b for b in range(bins) if np.any(which == b)]
    centres = np.array([np.exp(np.mean(np.log(x[which == b]))) for b in keep])
    medians = np.array([np.median(y[which == b]) for b in keep])
    return centres, medians


def memory_bars(frame: pd.DataFrame, *, title: str) -> bytes:
    """Left: stacked bars per submission (rows) of the memory parts (MiB columns) with the
    measured peak (column `peak`) as a black tick: the parts are exact, the peak is measured.
    Right: the exact tensor parts alone (all but the last part, activations + temporaries), which
    a large activation share would flatten on the left."""
    fig, (ax, exact) = plt.subplots(
        1, 2, figsize=(_SIZE[0] * 1.45, _SIZE[1]), gridspec_kw={"width_ratios": [3, 2]}
    )
    parts = [c for c in frame.columns if c != "peak"]
    bottom = np.zeros(len(frame))
    palette = plt.get_cmap("Set2")
    x = np.arange(len(frame))
    names = [str(i) for i in frame.index]
    for i, part in enumerate(parts):
        values = np.nan_to_num(frame[part].to_numpy(float))
        ax.bar(x, values, bottom=bottom, color=palette(i), label=part, width=0.6)
        bottom += values
    if "peak" in frame:
        ax.scatter(
            x, frame["peak"], marker="_", s=900, color="black", label="measured peak", zorder=3
        )
    ax.set_xticks(x, names, rotation=20, ha="right")
    _finish(ax, title, "", "MiB")
    width = 0.8 / max(len(parts) - 1, 1)
    for i, part in enumerate(parts[:-1]):
        exact.bar(
            x + (i - (len(parts) - 2) / 2) * width,
            np.nan_to_num(frame[part].to_numpy(float)),
            width=width,
            color=palette(i),
            label=part,
        )
    exact.set_xticks(x, names, rotation=20, ha="right")
    _finish(exact, "exact tensor bytes", "", "MiB")
    return _png(fig)


def pareto(
    points: pd.DataFrame,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    colour: Mapping[str, str],
    logx: bool = False,
    logy: bool = False,
    x_lower: bool = True,
) -> bytes:
    """Points per submission (`submission`, `x`, `y`, `on_frontier`, optional `label`): frontier
    points filled and joined by the staircase that bounds what they dominate (lower x better:
    across then down or up; higher x better: up then across), dominated points hollow."""
    fig, ax = plt.subplots(figsize=_SIZE)
    for name, group in points.groupby("submission", sort=True):
        front = group[group["on_frontier"]]
        dominated = group[~group["on_frontier"]]
        if len(front):
            ax.scatter(front["x"], front["y"], color=colour[name], s=46, label=name, zorder=3)
        ax.scatter(
            dominated["x"],
            dominated["y"],
            facecolors="none",
            edgecolors=colour[name],
            s=46,
            zorder=3,
            label=None if len(front) else f"{name} (dominated)",
        )
        if "label" in group:
            for _, row in group.iterrows():
                ax.annotate(
                    str(row["label"]),
                    (row["x"], row["y"]),
                    fontsize=7,
                    xytext=(4, 3),
                    textcoords="offset points",
                )
    frontier = points[points["on_frontier"]].sort_values("x")
    if len(frontier) > 1:
        ax.step(
            frontier["x"],
            frontier["y"],
            where="post" if x_lower else "pre",
            color="grey",
            linewidth=1,
            linestyle=":",
            label="frontier",
        )
    _finish(ax, title, xlabel, ylabel, logx, logy)
    return _png(fig)


def scatter_with_fits(
    points: pd.DataFrame,
    fits: Mapping[str, tuple[np.ndarray, np.ndarray, str]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    colour: Mapping[str, str],
    logx: bool = True,
    logy: bool = True,
    reference_line: float | None = None,
) -> bytes:
    """Points per submission (`submission`, `x`, `y`, optional `lo`/`hi` error bars) with a fitted
    curve per submission (`fits[name] = (x, y, legend text)`)."""
    fig, ax = plt.subplots(figsize=_SIZE)
    for name, group in points.groupby("submission", sort=True):
        if {"lo", "hi"} <= set(group.columns):
            err = np.vstack([group["y"] - group["lo"], group["hi"] - group["y"]])
            ax.errorbar(
                group["x"],
                group["y"],
                yerr=np.clip(np.nan_to_num(err), 0, None),
                fmt="o",
                color=colour[name],
                capsize=3,
                label=name,
            )
        else:
            ax.scatter(group["x"], group["y"], color=colour[name], label=name, zorder=3)
        if name in fits:
            fx, fy, legend = fits[name]
            ax.plot(fx, fy, color=colour[name], linestyle="-", linewidth=1, label=legend)
        else:
            ordered = group.sort_values("x")
            ax.plot(ordered["x"], ordered["y"], color=colour[name], linewidth=1)
    if reference_line is not None:
        ax.axhline(reference_line, color="black", linestyle="--", linewidth=1)
    _finish(ax, title, xlabel, ylabel, logx, logy)
    return _png(fig)


def _finish(
    ax: plt.Axes, title: str, xlabel: str, ylabel: str, logx: bool = False, logy: bool = False
) -> None:
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=8, loc="best")
