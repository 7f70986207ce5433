"""Honest statistics for reports: seed gates, speedups against a reference, data equivalence.

Every number here starts from the studies' selected trials (`reports.scoring.selected_trials`:
per study, the trial with the least time to target, ties by steps, best metric, trial index).

- Seed gate: a time-to-target claim counts only if the workload's seed gate passes
  (`harness.workload.Target.gate_passes`, applied to each study's metric at the claimed step).
- Speedups: per (submission, workload), median_k ref / median_k sub of a cost to target, with a
  percentile bootstrap CI over studies and Welch's t-test on log costs. Each pair uses only its two
  submissions' trials, so adding a submission to the pool never changes a pair's numbers.
- Data equivalence: fit the reference's loss-vs-tokens curve L(D) = a * D**-b + c and ask how many
  reference tokens a submission's final loss is worth.

Only pandas, numpy and scipy are used (`harness.workload` imports no framework: it is checked by
`tests/reports/test_scoring.py::test_import_reports_loads_no_framework`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

from harness.errors import UsageError
from harness.target import Direction, Target
from reports.held_out import workload_variants
from reports.scoring import select_trials, selected_trials, workload_times

__all__ = [
    "PowerLaw",
    "data_equivalence",
    "fit_power_law",
    "gated_workload_times",
    "reference_speedups",
    "seed_gate",
]

_QUANTITIES = ("time_to_target_s", "steps_to_target", "tokens_to_target")
_PAIR = ["submission", "workload"]


# -- seed gate ---------------------------------------------------------------------------------


def seed_gate(trials: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """The seed gate per (submission, workload), over the studies' selected trials.

    A claim "reaches the target in S steps" is what the speedrun gates: every seed trained to S,
    the mean of their metric at S beating the target by a margin. Here each study's selected trial
    is one seed, and the claim is the earliest eval step at which the gate passes:

        v_k(S)        = study k's selected trial's target metric at its last eval with step <= S
                        (held after the trial stopped at the target; nan before its first eval)
        statistic(S)  = (target - mean_k v_k(S)) * sqrt(n)   (direction min; mirrored for max)
        claimed_steps = min {S : Target.gate_passes(v(S))}  (n >= target_seeds finite values and
                        statistic(S) >= target_gate_margin); inf when no eval step passes
        passes        = claimed_steps < inf

    One lucky seed cannot pass: the other seeds' values stay on the wrong side of the target.
    Where no step passes, mean and statistic are those at the last eval step. Rows whose
    `target_seeds` is null (AlgoPerf imports) are not gated: passes, "no gate recorded". Held-out
    variant rows are left out. The caller filters hardware class and ruleset.

    Args:
      trials: a trials frame (`ResultsStore.read_trials()`).
      evals: the evals frame holding those trials' curves (`ResultsStore.read_evals()`).

    Returns:
      Indexed by (submission, workload); columns n, needed, claimed_steps, mean, statistic,
      margin, passes (bool), reason ("" when it passes).
    """
    selected = selected_trials(trials[workload_variants(trials) == ""])
    columns = ["n", "needed", "claimed_steps", "mean", "statistic", "margin", "passes", "reason"]
    if selected.empty:
        index = pd.MultiIndex.from_tuples([], names=_PAIR)
        return pd.DataFrame(columns=columns, index=index).astype({"passes": bool})
    curves = _target_curves(selected, evals)
    rows = [_gate_row(pair, group, curves) for pair, group in selected.groupby(_PAIR, sort=True)]
    index = pd.MultiIndex.from_tuples([r[0] for r in rows], names=_PAIR)
    frame = pd.DataFrame([r[1] for r in rows], index=index, columns=columns)
    return frame.astype({"n": int, "needed": "Int64", "passes": bool})


def _target_curves(selected: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """The selected trials' target-metric curves: one row per (trial_id, step), with value."""
    wanted = selected[["trial_id", "target_metric"]]
    curve = evals[["trial_id", "metric", "step", "value"]].merge(
        wanted, left_on=["trial_id", "metric"], right_on=["trial_id", "target_metric"]
    )
    return curve[["trial_id", "step", "value"]].astype({"step": float, "value": float})


def _values_by_step(group: pd.DataFrame, curves: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values[k, i]): study k's value at its last eval with step <= steps[i]."""
    mine = curves[curves["trial_id"].isin(set(group["trial_id"]))]
    steps = np.unique(mine["step"].to_numpy())
    values = np.full((len(group), len(steps)), np.nan)
    for k, trial_id in enumerate(group["trial_id"]):
        curve = mine[mine["trial_id"] == trial_id].sort_values("step")
        at = np.searchsorted(curve["step"].to_numpy(), steps, side="right") - 1
        known = at >= 0
        values[k, known] = curve["value"].to_numpy()[at[known]]
    return steps, values


def _gate_row(
    pair: tuple[str, str], group: pd.DataFrame, curves: pd.DataFrame
) -> tuple[tuple[str, str], list[object]]:
    """One seed_gate row: its key and its column values."""
    first = group.iloc[0]
    seeds = pd.to_numeric(group["target_seeds"], errors="coerce").max()
    margin_raw = pd.to_numeric(group["target_gate_margin"], errors="coerce").max()
    direction = Direction(str(first["target_direction"]))
    target_value = float(first["target_value"])
    margin = 0.0 if pd.isna(margin_raw) else float(margin_raw)
    gate = Target(
        str(first["target_metric"]),
        target_value,
        direction,
        1 if pd.isna(seeds) else int(seeds),
        gate_margin=margin,
    )
    steps, values = _values_by_step(group, curves)
    n = len(group)
    passing = [i for i in range(len(steps)) if gate.gate_passes(list(values[:, i]))]
    at = passing[0] if passing else len(steps) - 1
    v = [float(x) for x in values[:, at]] if len(steps) else [math.nan] * n
    mean = float(np.mean(v))
    slack = target_value - mean if direction is Direction.MIN else mean - target_value
    statistic = slack * math.sqrt(n)
    claimed = float(steps[at]) if passing else math.inf
    if pd.isna(seeds):
        claimed = float(np.median(_steps(group)))
        return pair, [n, None, claimed, mean, statistic, math.nan, True, "no gate recorded"]
    reason = "" if passing else _gate_reason(group, v, int(seeds), statistic, margin)
    return pair, [n, int(seeds), claimed, mean, statistic, margin, bool(passing), reason]


def _gate_reason(
    group: pd.DataFrame, v: list[float], needed: int, statistic: float, margin: float
) -> str:
    """Why no eval step passes the gate, in words, for the first check that fails."""
    if len(v) < needed:
        return f"{len(v)} seeds < {needed} needed"
    if not np.isfinite(_steps(group)).any():
        return "target not reached in any study"
    not_finite = sum(not math.isfinite(x) for x in v)
    if not_finite:
        return f"{not_finite} of {len(v)} values not finite at the last eval"
    return f"statistic {statistic:.4g} < margin {margin:.4g} at the last eval"


def gated_workload_times(
    trials: pd.DataFrame,
    evals: pd.DataFrame,
    *,
    hardware_class: str | None = None,
    ruleset: str | None = None,
    held_out_rule: bool = False,
) -> pd.DataFrame:
    """`reports.scoring.workload_times`, with inf wherever the seed gate fails.

    t[s, w] = workload_times(...)[s, w] if seed_gate(...)[s, w].passes else inf.
    """
    times = workload_times(
        trials, hardware_class=hardware_class, ruleset=ruleset, held_out_rule=held_out_rule
    )
    gate = seed_gate(select_trials(trials, hardware_class=hardware_class, ruleset=ruleset), evals)
    for submission, workload in gate.index[~gate["passes"].to_numpy()]:
        if submission in times.index and workload in times.columns:
            times.loc[submission, workload] = np.inf
    return times


# -- speedups against a reference ---------------------------------------------------------------


def reference_speedups(
    trials: pd.DataFrame,
    reference: str,
    *,
    quantity: str = "time_to_target_s",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    hardware_class: str | None = None,
    ruleset: str | None = None,
) -> pd.DataFrame:
    """Each submission's speedup over `reference` per workload, with a bootstrap CI and Welch's t.

        x_k      = quantity of study k's selected trial    (never reached: inf)
        speedup  = median_k x_ref,k / median_k x_sub,k      (sub inf: 0; ref inf: nan, noted)
        CI       = percentiles (1 ± confidence) / 2 of the speedup over n_boot resamples, each
                   side's studies drawn with replacement (numpy Generator seeded with `seed`,
                   fresh per pair; order statistics, so draws where only the reference fails
                   count as inf; draws where both fail are dropped)
        welch_t, welch_p = Welch's t-test of log x_ref vs log x_sub on the finite values
                   (t > 0: the submission needs less); nan when a side has < 2 finite values

    Args:
      trials: a trials frame; filtered by `select_trials(hardware_class=, ruleset=)`.
      reference: the submission every other is compared with (its own row has speedup 1).
      quantity: the cost to target compared: time_to_target_s, steps_to_target or
        tokens_to_target.
      n_boot, confidence, seed: the bootstrap.

    Returns:
      Indexed by (submission, workload); columns speedup, ci_low, ci_high, n_sub, n_ref,
      welch_t, welch_p, note.

    Raises:
      UsageError: unknown quantity, reference, or bootstrap settings.
    """
    if quantity not in _QUANTITIES:
        raise UsageError(f"quantity {quantity!r}: one of {', '.join(_QUANTITIES)}")
    if n_boot < 1 or not 0.0 < confidence < 1.0:
        raise UsageError(f"need n_boot >= 1 (got {n_boot}) and 0 < confidence < 1 ({confidence})")
    trials = select_trials(trials, hardware_class=hardware_class, ruleset=ruleset)
    _check_reference(trials, reference)
    costs = _study_costs(selected_trials(trials), quantity)
    rows = []
    for (submission, workload), sub in sorted(costs.items()):
        ref = costs.get((reference, workload))
        row = _speedup_row(sub, ref, quantity, n_boot, confidence, seed)
        rows.append({"submission": submission, "workload": workload, **row})
    return pd.DataFrame(rows).set_index(_PAIR)


def _check_reference(trials: pd.DataFrame, reference: str) -> None:
    known = sorted(str(s) for s in trials["submission"].unique())
    if reference not in known:
        raise UsageError(
            f"reference submission {reference!r} has no trials here; known: {', '.join(known)}"
        )


def _study_costs(selected: pd.DataFrame, quantity: str) -> dict[tuple[str, str], np.ndarray]:
    """Per (submission, workload), each study's cost: inf if not reached, nan if not recorded."""
    reached = selected["time_to_target_s"].notna().to_numpy()
    cost = pd.to_numeric(selected[quantity], errors="coerce").astype(float).to_numpy()
    cost = np.where(reached, cost, np.inf)
    grouped = pd.Series(cost, index=selected.index).groupby([selected[k] for k in _PAIR])
    return {(str(s), str(w)): group.to_numpy() for (s, w), group in grouped}


def _ratio(ref: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """ref / sub, with ref = inf -> inf (only the submission reaches), both inf -> nan."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.asarray(ref, dtype=float) / np.asarray(sub, dtype=float)
    both = np.isinf(ref) & np.isinf(sub)
    return np.where(both, np.nan, np.where(np.isinf(ref), np.inf, ratio))


def _speedup_row(
    sub: np.ndarray,
    ref: np.ndarray | None,
    quantity: str,
    n_boot: int,
    confidence: float,
    seed: int,
) -> dict[str, object]:
    """One reference_speedups row (without its key)."""
    nan = math.nan
    row: dict[str, object] = {"speedup": nan, "ci_low": nan, "ci_high": nan, "n_sub": len(sub)}
    row.update(n_ref=0, welch_t=nan, welch_p=nan, note="")
    if ref is None:
        row["note"] = "reference has no trials on this workload"
        return row
    row["n_ref"] = len(ref)
    if np.isnan(sub).any() or np.isnan(ref).any():
        row["note"] = f"{quantity} not recorded"
        return row
    speedup = float(_ratio(np.median(ref), np.median(sub)))
    notes = []
    if math.isinf(float(np.median(ref))):
        speedup = nan
        notes.append("reference never reaches the target (median over studies)")
    elif math.isinf(float(np.median(sub))):
        notes.append("never reaches the target (median over studies)")
    if min(len(sub), len(ref)) < 2:
        notes.append("one study: no spread")
    row.update(speedup=speedup, note="; ".join(notes))
    if not math.isnan(speedup):
        row["ci_low"], row["ci_high"] = _bootstrap_ci(sub, ref, n_boot, confidence, seed)
    row["welch_t"], row["welch_p"] = _welch_log(ref, sub)
    return row


def _bootstrap_ci(
    sub: np.ndarray, ref: np.ndarray, n_boot: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap CI of median(ref) / median(sub), resampling each side's studies."""
    rng = np.random.default_rng(seed)
    sub_draws = sub[rng.integers(0, len(sub), size=(n_boot, len(sub)))]
    ref_draws = ref[rng.integers(0, len(ref), size=(n_boot, len(ref)))]
    ratios = _ratio(np.median(ref_draws, axis=1), np.median(sub_draws, axis=1))
    ratios = ratios[~np.isnan(ratios)]
    if ratios.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha], method="inverted_cdf")
    return float(low), float(high)


def _welch_log(ref: np.ndarray, sub: np.ndarray) -> tuple[float, float]:
    """Welch's t and two-sided p on log costs (finite, positive values only)."""
    ref_ok = np.log(ref[np.isfinite(ref) & (ref > 0)])
    sub_ok = np.log(sub[np.isfinite(sub) & (sub > 0)])
    if min(ref_ok.size, sub_ok.size) < 2:
        return math.nan, math.nan
    with warnings.catch_warnings():  # equal constant samples: scipy warns and returns nan
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy.stats.ttest_ind(ref_ok, sub_ok, equal_var=False)
    return float(result.statistic), float(result.pvalue)


# -- data equivalence ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PowerLaw:
    """A loss-vs-data curve L(D) = a * D**-b + c (a > 0, b > 0, c >= 0: the irreducible loss)."""

    a: float
    b: float
    c: float

    def loss_at(self, tokens: float) -> float:
        """L(D) = a * D**-b + c."""
        return self.a * tokens**-self.b + self.c

    def tokens_for(self, loss: float) -> float:
        """The data the curve needs to reach `loss`: D = ((loss - c) / a)**(-1 / b);
        inf if loss <= c."""
        if loss <= self.c:
            return math.inf
        return float(((loss - self.c) / self.a) ** (-1.0 / self.b))


def fit_power_law(tokens: np.ndarray | pd.Series, loss: np.ndarray | pd.Series) -> PowerLaw:
    """Least-squares fit of L(D) = a * D**-b + c (scipy.optimize.curve_fit, a, b > 0, c >= 0).

    Tokens are divided by their median for the fit (conditioning) and `a` scaled back; the start
    point is c0 = 0.9 * min L and a0, b0 from a line through log(L - c0) vs log D.

    Raises:
      UsageError: fewer than 4 finite points (D > 0) at 3 distinct D, or the fit fails.
    """
    d = np.asarray(tokens, dtype=float)
    y = np.asarray(loss, dtype=float)
    ok = np.isfinite(d) & np.isfinite(y) & (d > 0)
    d, y = d[ok], y[ok]
    if d.size < 4 or np.unique(d).size < 3:
        raise UsageError(
            f"power-law fit needs >= 4 finite points at >= 3 token counts; got {d.size} points"
        )
    scale = float(np.median(d))
    x = d / scale
    p0 = _power_law_start(x, y)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.optimize.OptimizeWarning)
            popt, _ = scipy.optimize.curve_fit(
                _power_law, x, y, p0=p0, bounds=([0.0, 0.0, 0.0], [np.inf] * 3), maxfev=20_000
            )
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"power-law fit failed on {d.size} points: {exc}") from None
    a_scaled, b, c = (float(p) for p in popt)
    if not (a_scaled > 0 and b > 0 and math.isfinite(a_scaled * scale**b)):
        raise UsageError(f"power-law fit degenerate (a={a_scaled:g}, b={b:g}) on {d.size} points")
    return PowerLaw(a=a_scaled * scale**b, b=b, c=c)


def _power_law(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a * x**-b + c


def _power_law_start(x: np.ndarray, y: np.ndarray) -> list[float]:
    """A start point (a0, b0, c0) inside the bounds."""
    c0 = max(0.0, 0.9 * float(y.min()))
    above = y > c0
    if above.sum() >= 2 and np.unique(x[above]).size >= 2:
        slope, intercept = np.polyfit(np.log(x[above]), np.log(y[above] - c0), 1)
        return [float(np.exp(intercept)), max(float(-slope), 1e-3), c0]
    return [max(float(y.max()) - c0, 1e-3), 0.5, c0]


def data_equivalence(
    trials: pd.DataFrame,
    evals: pd.DataFrame,
    reference: str,
    *,
    hardware_class: str | None = None,
    ruleset: str | None = None,
) -> pd.DataFrame:
    """How many reference tokens each submission's final loss is worth, per workload (min targets).

        fit          = fit_power_law(tokens, target metric) over the evals of the reference's
                       selected trials, pooled over studies
        ratio_k      = fit.tokens_for(L_k) / D_k    (D_k: tokens trained by study k's selected
                       trial; L_k: its final target metric; a non-finite L_k counts 0)
        ratio        = median_k ratio_k             (2: the submission's loss took the
                                                     reference twice the data)
        steps_speedup = median_k steps_ref / median_k steps_sub   (as in reference_speedups)

    Args:
      trials, evals: the results store's frames; trials filtered by `select_trials`.
      reference: the submission whose curve defines the exchange rate.

    Returns:
      Indexed by (submission, workload); columns ratio, n, steps_speedup, fit_a, fit_b, fit_c,
      note (why a number is missing, or that D_eff extrapolates past the reference's data).

    Raises:
      UsageError: unknown reference, or no workload with a min-direction target.
    """
    trials = select_trials(trials, hardware_class=hardware_class, ruleset=ruleset)
    _check_reference(trials, reference)
    selected = selected_trials(trials)
    selected = selected[selected["target_direction"].astype("string").eq("min").fillna(False)]
    if selected.empty:
        raise UsageError("data equivalence needs a workload whose target is minimized (a loss)")
    rows = []
    for workload, group in selected.groupby("workload", sort=True):
        ref = group[group["submission"] == reference]
        fit, fit_note = _reference_fit(ref, evals)
        ref_steps = _steps(ref)
        for submission, sub in group.groupby("submission", sort=True):
            row = _equivalence_row(sub, fit, fit_note, ref, ref_steps)
            rows.append({"submission": submission, "workload": workload, **row})
    return pd.DataFrame(rows).set_index(_PAIR)


def _reference_fit(ref: pd.DataFrame, evals: pd.DataFrame) -> tuple[PowerLaw | None, str]:
    """The reference's power law on this workload, or None and why not."""
    if ref.empty:
        return None, "reference has no trials on this workload"
    curve = evals[
        evals["trial_id"].isin(ref["trial_id"]) & evals["metric"].isin(ref["target_metric"])
    ]
    curve = curve[curve["tokens"].notna()]
    try:
        return fit_power_law(curve["tokens"].astype(float), curve["value"].astype(float)), ""
    except UsageError as exc:
        return None, f"reference fit: {exc}"


def _steps(selected: pd.DataFrame) -> np.ndarray:
    """Each selected trial's steps to target (never reached: inf)."""
    steps = pd.to_numeric(selected["steps_to_target"], errors="coerce").astype(float)
    return steps.fillna(np.inf).to_numpy()


def _equivalence_row(
    sub: pd.DataFrame, fit: PowerLaw | None, fit_note: str, ref: pd.DataFrame, ref_steps: np.ndarray
) -> dict[str, object]:
    """One data_equivalence row (without its key)."""
    nan = math.nan
    steps_speedup = float(_ratio(np.median(ref_steps), np.median(_steps(sub)))) if len(ref) else nan
    if steps_speedup == math.inf:
        steps_speedup = nan  # the reference never reaches the target
    row: dict[str, object] = {"ratio": nan, "n": len(sub), "steps_speedup": steps_speedup}
    row.update(fit_a=nan, fit_b=nan, fit_c=nan, note=fit_note)
    if fit is None:
        return row
    row.update(fit_a=fit.a, fit_b=fit.b, fit_c=fit.c)
    tokens = pd.to_numeric(sub["tokens"], errors="coerce").astype(float).to_numpy()
    if np.isnan(tokens).any():
        row["note"] = "tokens trained not recorded"
        return row
    final = pd.to_numeric(sub["final_metric"], errors="coerce").astype(float).to_numpy()
    effective = np.array([fit.tokens_for(v) if math.isfinite(v) else 0.0 for v in final])
    row["ratio"] = float(np.median(effective / tokens))
    reference_tokens = pd.to_numeric(ref["tokens"], errors="coerce").astype(float).max()
    if (effective > reference_tokens).any():
        row["note"] = "D_eff beyond the reference's data (extrapolated)"
    return row
