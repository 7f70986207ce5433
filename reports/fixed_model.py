"""The fixed-model report: the same model, data, batch and precision for every optimizer.

Per workload (one scale, one hardware class), for each submission:

- the claim: time, steps and tokens to target (median over studies of each study's selected trial),
  speedups against the named reference with bootstrap 95% CIs and Welch's p, the data-equivalence
  ratio D_eff / D, and whether the workload's seed gate passes (a single lucky seed claims nothing);
- the target metric vs tokens and vs training seconds (selected trials; median and inter-quartile
  band over studies), with the target line;
- learning-rate and weight-decay sensitivity over every trial of the sweep;
- best-of-k tuning curves: the best metric found after k trials, k = 1..N (median over studies);
- memory: params, grads, optimizer state (exact bytes) and activations + temporaries (measured peak
  minus those), beside the measured peak;
- stability: divergences, faults, seed spread; and the tuning protocol as it ran.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from harness.trial import FAULTS, TrialStatus, search_algorithm
from reports import figures, frames, stats
from reports.page import Figure, Section, Table
from reports.scoring import selected_trials, target_medians

__all__ = ["fixed_model_sections"]

_MIB = 2**20
_SELECTION_RULE = (
    "Selection: per study, the trial that reached the target fastest (training seconds), ties by "
    "fewer steps, then by the better metric; per workload, the median over studies of the selected "
    "trials. Tuned on the workload's validation metric."
)


def fixed_model_sections(
    trials: pd.DataFrame,
    evals: pd.DataFrame,
    reference: str,
    workload: str,
    scale: str,
    n_boot: int = 2000,
) -> list[Section]:
    """The report's sections for one (workload, scale): `trials` holds only that group's
    fixed-model trials of one hardware class."""
    colour = figures.colours(trials["submission"].unique())
    chosen = selected_trials(trials)
    target = _target(trials)
    tag = f"{workload}@{scale}"
    ident = f"{workload}-{scale}"
    return [
        _claims(trials, evals, chosen, reference, tag, ident, n_boot),
        _curves(evals, chosen, target, tag, ident, colour),
        _tuning(trials, chosen, target, tag, ident, colour),
        _memory(trials, tag, ident),
        _stability(trials, chosen, tag, ident),
    ]


def _target(trials: pd.DataFrame) -> dict[str, object]:
    row = trials.iloc[0]
    return {
        "metric": str(row["target_metric"]),
        "value": float(row["target_value"]),
        "minimize": frames.minimizes(trials),
    }


def _claims(
    trials: pd.DataFrame,
    evals: pd.DataFrame,
    chosen: pd.DataFrame,
    reference: str,
    tag: str,
    ident: str,
    n_boot: int,
) -> Section:
    table = pd.DataFrame(index=pd.Index(sorted(trials["submission"].unique()), name="submission"))
    table["trials"] = trials.groupby("submission").size()
    table["studies"] = chosen.groupby("submission").size()
    reached = trials["status"] == TrialStatus.TARGET_REACHED
    table["reached"] = reached.groupby(trials["submission"]).sum()
    medians = target_medians(trials).droplevel("workload")  # one workload here
    for column, name in (
        ("time_to_target_s", "time to target (s)"),
        ("steps_to_target", "steps to target"),
        ("tokens_to_target", "tokens to target"),
    ):
        table[name] = medians[column]
    for quantity, label in (("steps_to_target", "steps"), ("time_to_target_s", "time")):
        speed = _by_submission(
            stats.reference_speedups(trials, reference, quantity=quantity, n_boot=n_boot)
        )
        table[f"speedup ({label})"] = speed["speedup"]
        table[f"{label} 95% CI"] = [
            _ci(lo, hi) for lo, hi in zip(speed["ci_low"], speed["ci_high"], strict=True)
        ]
        if label == "time":
            table["Welch p (time)"] = speed["welch_p"]
    paragraphs = [
        f"Speedups are against {reference} on {tag}: the reference's median over studies divided "
        "by the submission's (> 1 is faster), with a percentile bootstrap over studies (each "
        "study has its own seeds). Steps compare across hardware; seconds only within this "
        "report's hardware class.",
    ]
    if _direction_min(trials):
        equivalence = _by_submission(stats.data_equivalence(trials, evals, reference))
        table["data equivalence D_eff/D"] = equivalence["ratio"]
        paragraphs.append(
            "Data equivalence: the reference's target metric vs tokens is fitted as "
            "L(D) = a·D^-b + c; a submission that ends at loss L after D tokens is worth "
            "D_eff = ((L - c)/a)^(-1/b) reference tokens, so D_eff / D > 1 means it needs fewer "
            "tokens than the reference for the same loss."
        )
    gate = _by_submission(stats.seed_gate(trials, evals))
    table["seed gate"] = [_gate_text(gate, name) for name in table.index]
    caveats = [
        f"{name}: no target claim on {tag} — {gate.loc[name, 'reason']}"
        for name in table.index
        if name in gate.index and not bool(gate.loc[name, "passes"])
    ]
    return Section(
        f"{tag}: time to target and speedups",
        paragraphs=paragraphs,
        caveats=caveats,
        tables=[Table(f"{ident}-claims", f"{tag}: claims per submission", table)],
    )


def _by_submission(frame: pd.DataFrame) -> pd.DataFrame:
    """A stats frame (indexed or keyed by submission and workload) indexed by submission."""
    frame = frame.reset_index()
    return frame.drop_duplicates("submission").set_index("submission")


def _direction_min(trials: pd.DataFrame) -> bool:
    return bool((trials["target_direction"] == "min").all())


def _ci(lo: float, hi: float) -> str:
    """`[lo, hi]`; an infinite end (resamples where only the reference never reached) shows ∞."""
    if np.isnan(lo) or np.isnan(hi):
        return "—"
    return "[" + ", ".join("∞" if np.isinf(v) else f"{v:.3g}" for v in (lo, hi)) + "]"


def _gate_text(gate: pd.DataFrame, name: str) -> str:
    if name not in gate.index:
        return "—"
    row = gate.loc[name]
    return "passes" if bool(row["passes"]) else f"fails: {row['reason']}"


def _curves(
    evals: pd.DataFrame,
    chosen: pd.DataFrame,
    target: dict[str, object],
    tag: str,
    ident: str,
    colour: dict[str, str],
) -> Section:
    metric = str(target["metric"])
    by_tokens: dict[str, pd.DataFrame] = {}
    by_time: dict[str, pd.DataFrame] = {}
    by_trial = frames.curves(evals, chosen["trial_id"], metric)
    for name, group in chosen.groupby("submission", sort=True):
        curves = [by_trial[tid] for tid in group["trial_id"]]
        if any(c["tokens"].notna().any() for c in curves):
            by_tokens[name] = frames.band(curves, "tokens")
        by_time[name] = frames.band(curves, "train_time_s")
    value = float(str(target["value"]))
    figs = []
    if by_tokens:
        figs.append(
            Figure(
                f"{ident}-metric-vs-tokens",
                f"{tag}: {metric} vs tokens of the "
                "selected trial of each study (median line, inter-quartile band)",
                figures.band_curves(
                    by_tokens,
                    title=f"{tag}: {metric} vs tokens",
                    xlabel="tokens",
                    ylabel=metric,
                    colour=colour,
                    target=value,
                ),
            )
        )
    figs.append(
        Figure(
            f"{ident}-metric-vs-time",
            f"{tag}: {metric} vs training seconds (the "
            "runner's clock; evaluation and compilation excluded)",
            figures.band_curves(
                by_time,
                title=f"{tag}: {metric} vs wall-clock",
                xlabel="training seconds",
                ylabel=metric,
                colour=colour,
                target=value,
            ),
        )
    )
    return Section(
        f"{tag}: curves",
        figures=figs,
        caveats=_early_curve_caveats(by_tokens or by_time, bool(target["minimize"])),
    )


def _early_curve_caveats(bands: dict[str, pd.DataFrame], minimize: bool) -> list[str]:
    """Pairs whose median curves cross: the one ahead early is not the one ahead at the end."""
    names = sorted(bands)
    found = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            early, late = _lead(bands[a], bands[b], minimize)
            if early is not None and late is not None and early != late:
                leader, trailer = (a, b) if early else (b, a)
                found.append(
                    f"{leader} leads {trailer} early but not at the end of the common "
                    "range: an early-curve comparison would mislead"
                )
    return found


def _lead(a: pd.DataFrame, b: pd.DataFrame, minimize: bool) -> tuple[bool | None, bool | None]:
    lo, hi = max(a["x"].min(), b["x"].min()), min(a["x"].max(), b["x"].max())
    if not hi > lo:
        return None, None
    probe = np.array([lo + 0.1 * (hi - lo), hi])
    ya = np.interp(probe, a["x"], a["median"])
    yb = np.interp(probe, b["x"], b["median"])
    ahead = ya < yb if minimize else ya > yb
    # within 0.5% the curves are level there (two implementations of one optimizer, say)
    level = np.abs(ya - yb) <= 0.005 * np.maximum(np.abs(ya), np.abs(yb))
    return (None if level[0] else bool(ahead[0])), (None if level[1] else bool(ahead[1]))


def _tuning(
    trials: pd.DataFrame,
    chosen: pd.DataFrame,
    target: dict[str, object],
    tag: str,
    ident: str,
    colour: dict[str, str],
) -> Section:
    metric, value = str(target["metric"]), float(str(target["value"]))
    figs = []
    diverged = trials["status"] == "diverged"
    for name, label in (("lr", "learning rate"), ("weight_decay", "weight decay")):
        x = frames.hparam(trials, name)
        if x.notna().sum() < 2 or not (x > 0).any():
            continue
        points = pd.DataFrame(
            {
                "submission": trials["submission"],
                "x": x,
                "y": trials["best_metric"].astype(float),
                "diverged": diverged,
            }
        ).dropna(subset=["x"])
        points = points[points["x"] > 0]
        figs.append(
            Figure(
                f"{ident}-sensitivity-{name}",
                f"{tag}: best {metric} of every trial vs "
                f"{label} (line: median per log bin; x: diverged)",
                figures.sensitivity(
                    points,
                    title=f"{tag}: {label} sensitivity",
                    xlabel=label,
                    ylabel=f"best {metric}",
                    colour=colour,
                    target=value,
                ),
            )
        )
    curves = _best_of_k(trials, bool(target["minimize"]))
    figs.append(
        Figure(
            f"{ident}-best-of-k",
            f"{tag}: best {metric} found after k trials in the "
            "order the search ran them (median and range over studies)",
            figures.band_curves(
                curves,
                title=f"{tag}: best-of-k tuning curves",
                xlabel="trials k",
                ylabel=f"best {metric}",
                colour=colour,
                target=value,
                step=True,
            ),
        )
    )
    caveats = []
    for name, group in chosen.groupby("submission", sort=True):
        edge = frames.edge_in_most_studies(trials[trials["submission"] == name], group)
        if edge:
            caveats.append(
                f"{name}: in most of its studies the selected trial's lr is the "
                f"{edge} lr the study tried, so the optimum may lie outside the search "
                "space (under-tuned)"
            )
    return Section(
        f"{tag}: tuning",
        paragraphs=[_SELECTION_RULE],
        caveats=caveats,
        figures=figs,
        tables=[_protocol(trials, tag, ident)],
    )


def _best_of_k(trials: pd.DataFrame, minimize: bool) -> dict[str, pd.DataFrame]:
    curves = {}
    for name, group in trials.groupby("submission", sort=True):
        runs = []
        for _, study in group.groupby("study"):
            values = study.sort_values("trial_index")["best_metric"].astype(float).to_numpy()
            values = np.where(np.isfinite(values), values, np.inf if minimize else -np.inf)
            runs.append(
                np.minimum.accumulate(values) if minimize else np.maximum.accumulate(values)
            )
        k = max(len(r) for r in runs)
        padded = np.full((len(runs), k), np.nan)
        for i, r in enumerate(runs):
            padded[i, : len(r)] = r
            padded[i, len(r) :] = r[-1]
        padded[~np.isfinite(padded)] = np.nan
        with np.errstate(all="ignore"):
            curves[name] = pd.DataFrame(
                {
                    "x": np.arange(1, k + 1),
                    "median": np.nanmedian(padded, 0),
                    "lo": np.nanmin(padded, 0),
                    "hi": np.nanmax(padded, 0),
                }
            )
    return curves


def _protocol(trials: pd.DataFrame, tag: str, ident: str) -> Table:
    rows = {}
    for name, group in trials.groupby("submission", sort=True):
        per_study = group.groupby("study").size()
        tried = []
        for key in sorted(
            {k for text in group["hparams_json"] for k in json.loads(str(text) or "{}")}
        ):
            values = frames.hparam(group, key).dropna()
            if values.empty:
                continue
            distinct = values.nunique()
            span = (
                f"{values.min():.3g}" if distinct == 1 else f"{values.min():.3g}–{values.max():.3g}"
            )
            tried.append(f"{key} {span} ({distinct} values)")
        rows[name] = {
            "ruleset": str(group["ruleset"].iloc[0]),
            "search": search_algorithm(str(group["ruleset_json"].iloc[0])),
            "studies": int(per_study.size),
            "trials per study": int(per_study.median()),
            "hyperparameters tried": "; ".join(tried) or "defaults only",
        }
    frame = pd.DataFrame.from_dict(rows, orient="index").rename_axis("submission")
    return Table(
        f"{ident}-protocol",
        f"{tag}: the tuning protocol as it ran (every submission "
        "tuned on the validation target metric)",
        frame,
    )


def _memory(trials: pd.DataFrame, tag: str, ident: str) -> Section:
    parts = {
        "params": "params_bytes",
        "grads": "grads_bytes",
        "optimizer state": "optimizer_state_bytes",
        "activations + temporaries": "activations_bytes",
        "peak": "peak_bytes",
    }
    ok = trials[trials["peak_bytes"].notna()]
    frame = pd.DataFrame(
        {label: ok[column].astype(float) / _MIB for label, column in parts.items()}
    )
    medians = frame.groupby(ok["submission"]).median().rename_axis("submission")
    table = medians.copy()
    table["peak source"] = ok.groupby("submission")["peak_source"].first()
    fig = Figure(
        f"{ident}-memory",
        f"{tag}: memory per submission (median over trials, MiB): exact "
        "tensor bytes stacked, the measured peak as a black tick",
        figures.memory_bars(medians, title=f"{tag}: memory breakdown"),
    )
    notes = []
    if ok["peak_source"].astype("string").str.startswith("vmhwm").any():
        notes.append(
            "On CPU the peak is the process's resident high-water mark: it includes the "
            "framework's own memory, so activations + temporaries is an upper bound."
        )
    return Section(
        f"{tag}: memory",
        paragraphs=notes,
        figures=[fig],
        tables=[Table(f"{ident}-memory", f"{tag}: memory (MiB)", table)],
    )


def _stability(trials: pd.DataFrame, chosen: pd.DataFrame, tag: str, ident: str) -> Section:
    status = trials["status"].astype(str)
    by = trials["submission"]
    table = pd.DataFrame(
        {
            "trials": by.value_counts(),
            "diverged": (status == "diverged").groupby(by).sum(),
            "faults": status.isin(FAULTS).groupby(by).sum(),
            "stopped early": (status == "stopped").groupby(by).sum(),
            "restarts": trials["restarts"].astype(float).fillna(0).groupby(by).sum(),
        }
    ).rename_axis("submission")
    final = chosen["final_metric"].astype(float)
    table["seed spread (std of final metric)"] = final.groupby(chosen["submission"]).std()
    return Section(
        f"{tag}: stability",
        paragraphs=[
            "Seed spread: the standard deviation over studies (each its own seed) of the selected "
            "trials' final metric."
        ],
        tables=[Table(f"{ident}-stability", f"{tag}: stability", table)],
    )
