"""AlgoPerf benchmark scores: performance profiles over workloads, integrated over tau.

For submissions s, workloads w, studies k and trials i (Dahl et al. 2023, "Benchmarking Neural
Network Training Algorithms", section 4.5; as scored by mlcommons/submissions_algorithms):

    t[s, w, k]  = min_i time_to_target_s[s, w, k, i]         (never reached: inf)
    t[s, w]     = median_k t[s, w, k]                         (np.median: an inf in the middle wins)
    r[s, w]     = t[s, w] / min_s' t[s', w]                   (nobody reached w: r = nan,
                                                               never <= tau)
    rho[s](tau) = |{w : r[s, w] <= tau}| / |W|                W = every workload in the trials
    score[s]    = (1 / (tau_max - 1)) * integral_1^tau_max rho[s](tau) dtau

The integral is the trapezoid rule on `num_points` evenly spaced taus (AlgoPerf: 100 on [1, 4]).
A submission with no trial on a workload of W gets t = inf there. Wall-clock times compare only
within one hardware class and one ruleset, so a trials frame that mixes them must be filtered.
The trial a study counts is chosen by `selected_trials` (the min above, with its tie-breaks).
AlgoPerf's held-out variants are not in W; with `held_out_rule=True` they gate their base workload
(`reports.held_out`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.errors import UsageError
from reports.held_out import apply_held_out_rule, held_out_variants, workload_variants

__all__ = [
    "benchmark_scores",
    "integrate_profiles",
    "performance_profiles",
    "select_trials",
    "selected_trials",
    "target_medians",
    "time_ratios",
    "workload_times",
]


def select_trials(
    trials: pd.DataFrame,
    *,
    hardware_class: str | None = None,
    ruleset: str | None = None,
    include_held_out: bool = False,
) -> pd.DataFrame:
    """The trials of one hardware class and one ruleset: the only ones whose times compare.

    Args:
      trials: a trials frame (`ResultsStore.read_trials()`).
      hardware_class: keep only this class; None: the frame must hold a single class.
      ruleset: keep only this ruleset; None: the frame must hold a single ruleset.
      include_held_out: keep AlgoPerf's held-out variant rows (`reports.held_out`); by default
        they are dropped, since they share their base workload's name but are not workloads of W.
        Variant rows that are not held out are always dropped: they count nowhere.

    Raises:
      UsageError: nothing is left, or a column mixes values and no filter picks one.
    """
    filters = (
        ("hardware_class", "hardware classes", "--hardware-class", hardware_class),
        ("ruleset", "rulesets", "--ruleset", ruleset),
    )
    for column, plural, flag, wanted in filters:
        if wanted is not None:
            trials = trials[trials[column] == wanted]
        elif column in trials and trials[column].nunique(dropna=False) > 1:
            found = sorted(str(v) for v in trials[column].unique())
            raise UsageError(
                f"trials mix {plural} {found}; times compare only within one: "
                f"pass {flag} with one of them"
            )
    variants = workload_variants(trials)
    keep = variants == ""
    if include_held_out:
        keep |= held_out_variants(trials) != ""
    trials = trials[keep]
    if trials.empty:
        chosen = " and ".join(f"{flag} {wanted!r}" for *_, flag, wanted in filters if wanted)
        raise UsageError("no trials left to score" + (f" with {chosen}" if chosen else ""))
    trials = _latest_only(trials, "submission", "submission_hash")
    return _latest_only(trials, "workload", "workload_version")


def _latest_only(trials: pd.DataFrame, key: str, version: str) -> pd.DataFrame:
    """Per `key`, only the rows of its most recently recorded `version`.

    An edited submission (new source hash) or a changed workload (new version) starts afresh:
    results of different versions are never compared or pooled.
    """
    if version not in trials or "created_utc" not in trials:
        return trials
    versions = trials[version].astype("string").fillna("")
    newest = trials.assign(_v=versions).sort_values("created_utc").groupby(key)["_v"].last()
    return trials[versions.to_numpy() == trials[key].map(newest).to_numpy()]


_STUDY_KEYS = ("submission", "workload", "scale", "study")


def selected_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Each study's selected trial: one row per (submission, workload, scale, study).

    The rule (the one every report uses): among a study's trials take, in order,
        1. the smallest time_to_target_s                        (null: never reached, inf)
        2. on a tie, the smallest steps_to_target               (null: inf)
        3. on a tie, the better best_metric in the row's target_direction (null: worst)
        4. on a tie, the smallest trial_index, then trial_id
    so a study that never reached its target selects its best-metric trial. Held-out variant rows
    (`reports.held_out`) are studies of their own, never mixed with their base workload's (nor are
    other variants' rows).
    Columns other than submission, workload and study may be absent: they count as null.

    Returns:
      The selected rows of `trials` (all its columns, its index), one per study.
    """
    is_max = _column(trials, "target_direction").astype("string").eq("max").fillna(False)
    sign = np.where(is_max.to_numpy(dtype=bool), -1.0, 1.0)
    metric = sign * _floats(trials, "best_metric", np.nan)
    keys = {f"_{k}": _column(trials, k).astype("string").fillna("") for k in _STUDY_KEYS}
    keys["_variant"] = workload_variants(trials).astype("string")
    ranks = {
        "_time": _floats(trials, "time_to_target_s"),
        "_steps": _floats(trials, "steps_to_target"),
        "_metric": np.where(np.isnan(metric), np.inf, metric),  # null: worst
        "_index": _floats(trials, "trial_index"),
        "_id": _column(trials, "trial_id").astype("string").fillna(""),
    }
    ranked = trials.assign(**keys, **ranks).sort_values([*keys, *ranks], kind="stable")
    selected = ranked.groupby(list(keys), sort=False, dropna=False).head(1)
    return selected.drop(columns=[*keys, *ranks])


def _column(trials: pd.DataFrame, name: str) -> pd.Series:
    """A column of `trials`, or an all-null one when the frame lacks it."""
    return trials[name] if name in trials else pd.Series(None, index=trials.index, dtype=object)


def _floats(trials: pd.DataFrame, name: str, null: float = np.inf) -> np.ndarray:
    """A column as floats, null (or absent) -> `null` (inf: it sorts last)."""
    values = pd.to_numeric(_column(trials, name), errors="coerce").astype(float)
    return values.fillna(null).to_numpy()


def _median_study_times(trials: pd.DataFrame, keys: list[str]) -> pd.Series:
    """t[keys] = median over studies of the selected trial's time_to_target_s (null -> inf).

    np.median: an inf in the middle wins, so a majority of failed studies gives inf.
    """
    selected = selected_trials(trials)
    time_s = selected["time_to_target_s"].astype(float).fillna(np.inf)
    return time_s.groupby([selected[k] for k in keys]).agg(lambda t: float(np.median(t)))


def workload_times(
    trials: pd.DataFrame,
    *,
    hardware_class: str | None = None,
    ruleset: str | None = None,
    held_out_rule: bool = False,
) -> pd.DataFrame:
    """Each submission's time to target per workload: median over studies of the best trial.

        t[s, w, k] = time_to_target_s of selected_trials   (null -> inf);   t[s, w] = median_k

    Args:
      trials: a trials frame; filtered by `select_trials(hardware_class=, ruleset=)`.
      held_out_rule: apply AlgoPerf's held-out workload rule (`reports.held_out`): a base
        workload's time counts inf unless its held-out variants were solved within 4x too.

    Returns:
      Seconds, indexed by submission (sorted), one column per base workload (sorted); inf where
      a submission never reached the target or has no trial on that workload.
    """
    trials = select_trials(
        trials, hardware_class=hardware_class, ruleset=ruleset, include_held_out=True
    )
    is_held_out = held_out_variants(trials) != ""
    base = trials[~is_held_out]
    if base.empty:
        raise UsageError("only held-out variant trials: there is no base workload to score")
    submissions = sorted(trials["submission"].unique())
    times = _median_study_times(base, ["submission", "workload"]).unstack("workload")
    times = times.reindex(index=submissions, columns=sorted(base["workload"].unique()))
    times = times.fillna(np.inf).astype(float)
    if held_out_rule:
        variants = trials[is_held_out].assign(variant=held_out_variants(trials)[is_held_out])
        held = _median_study_times(variants, ["submission", "workload", "variant"])
        held = held.unstack(["workload", "variant"])
        times = apply_held_out_rule(times, held.reindex(index=submissions).fillna(np.inf))
    return times


def time_ratios(times: pd.DataFrame) -> pd.DataFrame:
    """Each time over the best time of its workload: r[s, w] = t[s, w] / min_s' t[s', w].

    Where nobody reached a workload (best = inf) every ratio is nan, which no tau counts.
    """
    best = times.min(axis=0)
    ratios = times.div(best.where(np.isfinite(best)), axis=1)
    return ratios.astype(float)


def performance_profiles(
    times: pd.DataFrame, max_tau: float = 4.0, num_points: int = 100, min_tau: float = 1.0
) -> pd.DataFrame:
    """rho[s](tau) = fraction of workloads whose ratio to the best is <= tau.

    Args:
      times: `workload_times` output; every column is a workload and counts in the divisor.
      max_tau, num_points, min_tau: taus = linspace(min_tau, max_tau, num_points).

    Returns:
      Indexed by submission, one column per tau (float column labels), values in [0, 1].

    Raises:
      UsageError: no workloads, fewer than 2 points, or max_tau <= min_tau.
    """
    if times.shape[1] == 0 or num_points < 2 or not max_tau > min_tau:
        raise UsageError(
            f"performance profile needs >= 1 workload (got {times.shape[1]}), num_points >= 2 "
            f"(got {num_points}) and max_tau > min_tau (got {max_tau} <= {min_tau})"
        )
    ratios = time_ratios(times).to_numpy()
    taus = np.linspace(min_tau, max_tau, num_points)
    rho = (ratios[:, :, None] <= taus[None, None, :]).sum(axis=1) / ratios.shape[1]
    return pd.DataFrame(rho, index=times.index, columns=pd.Index(taus, name="tau"))


def integrate_profiles(profiles: pd.DataFrame) -> pd.Series:
    """score[s] = trapezoid integral of rho[s] over tau, divided by the tau range (1 = best)."""
    taus = profiles.columns.to_numpy(dtype=float)
    area = np.trapezoid(profiles.to_numpy(dtype=float), x=taus, axis=1)
    return pd.Series(area / (taus[-1] - taus[0]), index=profiles.index, name="score")


def benchmark_scores(
    trials: pd.DataFrame,
    *,
    max_tau: float = 4.0,
    num_points: int = 100,
    hardware_class: str | None = None,
    ruleset: str | None = None,
    held_out_rule: bool = False,
) -> pd.Series:
    """AlgoPerf benchmark score per submission, in [0, 1], over every workload in `trials`.

    score[s] = (1 / (max_tau - 1)) * integral_1^max_tau rho[s](tau) dtau, with rho from
    `performance_profiles(workload_times(trials))`; see the module docstring for the whole chain.

    Args:
      trials: a trials frame (`ResultsStore.read_trials()`).
      max_tau, num_points: the profile's tau grid (AlgoPerf: 4.0, 100).
      hardware_class, ruleset: which trials compare (see `select_trials`).
      held_out_rule: apply AlgoPerf's held-out workload rule (see `workload_times`).

    Returns:
      Scores named `score`, indexed by submission, sorted best first (ties by name).
    """
    times = workload_times(
        trials, hardware_class=hardware_class, ruleset=ruleset, held_out_rule=held_out_rule
    )
    scores = integrate_profiles(performance_profiles(times, max_tau, num_points))
    order = sorted(scores.index, key=lambda s: (-scores[s], s))
    return scores.reindex(order)


def target_medians(trials: pd.DataFrame) -> pd.DataFrame:
    """Median over studies of the selected trial's time, steps and tokens to target, indexed by
    (submission, workload).

    A study whose selected trial missed the target counts inf (tokens only on workloads that count
    tokens at all; elsewhere they stay missing).
    """
    best = selected_trials(trials)
    missed = best["time_to_target_s"].isna()
    counts_tokens = trials["tokens"].notna() | trials["tokens_to_target"].notna()
    token_workloads = set(trials.loc[counts_tokens, "workload"])
    values = pd.DataFrame(
        {
            "time_to_target_s": best["time_to_target_s"].astype(float).fillna(np.inf),
            "steps_to_target": best["steps_to_target"].astype(float).mask(missed, np.inf),
            "tokens_to_target": best["tokens_to_target"]
            .astype(float)
            .mask(missed & best["workload"].isin(token_workloads), np.inf),
        }
    )
    keys = [best["submission"], best["workload"]]
    return values.groupby(keys).agg(lambda s: float(np.median(s.to_numpy(dtype=float))))
