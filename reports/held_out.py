"""AlgoPerf's held-out workload rule (v0.5): a base workload counts only if its variant
is solved too.

An AlgoPerf variant (`fastmri_tanh`, `ogbg_gelu`, ...) is imported under its base workload's name
with `{"variant": <name>, "held_out": <on the round's held-out list>}` in `ruleset_json`, so a
variant row never counts as a workload of its own (it is not in W), and a variant that is not held
out counts nowhere. With the rule on, for submission s, base workload w and each held-out variant v
of w present in the trials (times are medians over studies of per-study best):

    S          = {s' : t[s', w] < inf}                        (the submissions that solved w)
    t[s, w]    stays finite only if t[s, w] <= 4 * min_{s' in S} t[s', w]
                and, for every v, t[s, v] < inf and t[s, v] <= 4 * min_{s' in S} t[s', v]
    otherwise  t[s, w] = inf

A base workload without variant rows is left as it is. Only pandas, numpy and json are used here.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pandas as pd

__all__ = ["HELD_OUT_FACTOR", "apply_held_out_rule", "held_out_variants", "workload_variants"]

HELD_OUT_FACTOR = 4.0  # AlgoPerf: within 4x of the fastest, the profile's largest tau


def workload_variants(trials: pd.DataFrame) -> pd.Series:
    """Per row, the workload variant it ran (`""` for a base workload row), from `ruleset_json`.

    A row is a variant row when its `ruleset_json` is a JSON object with a `variant` name, held out
    or not; a frame without `ruleset_json` holds base rows only.
    """
    return _per_row(trials, held_out_only=False)


def held_out_variants(trials: pd.DataFrame) -> pd.Series:
    """Per row, the held-out variant it ran (`""` for any other row), from `ruleset_json`.

    A row is a held-out variant row when its `ruleset_json` is a JSON object with `"held_out": true`
    and a `variant` name.
    """
    return _per_row(trials, held_out_only=True)


def _per_row(trials: pd.DataFrame, held_out_only: bool) -> pd.Series:
    if "ruleset_json" not in trials:
        return pd.Series("", index=trials.index, dtype=object)
    return trials["ruleset_json"].map(lambda text: _variant_of(text, held_out_only)).astype(object)


@lru_cache(maxsize=8192)
def _variant_of(ruleset_json: object, held_out_only: bool) -> str:
    """The variant one `ruleset_json` value names (held out, if asked); `""` when none,
    or not JSON."""
    if not isinstance(ruleset_json, str):
        return ""
    try:
        parsed = json.loads(ruleset_json)
    except ValueError:
        return ""
    if not isinstance(parsed, dict) or (held_out_only and parsed.get("held_out") is not True):
        return ""
    return str(parsed.get("variant") or "")


def apply_held_out_rule(
    base_times: pd.DataFrame, held_out_times: pd.DataFrame, factor: float = HELD_OUT_FACTOR
) -> pd.DataFrame:
    """Base-workload times with the held-out rule applied (see the module docstring).

    Args:
      base_times: seconds, indexed by submission, one column per base workload (inf: not reached).
      held_out_times: seconds, indexed by submission, columns a MultiIndex (workload, variant)
        with `workload` the variant's base workload; a missing submission counts inf.
      factor: how many times the fastest solver's time a time may be (AlgoPerf: 4).

    Returns:
      A copy of `base_times` with inf where the rule fails.
    """
    times = base_times.copy()
    held = held_out_times.reindex(index=times.index).fillna(np.inf)
    for workload in times.columns:
        if workload not in held.columns.get_level_values(0):
            continue
        base = times[workload].to_numpy(dtype=float)
        solved = np.isfinite(base)
        keep = solved & (base <= factor * _fastest(base, solved))
        for variant_times in held.xs(workload, axis=1, level=0).T.to_numpy(dtype=float):
            fastest = _fastest(variant_times, solved)
            keep &= np.isfinite(variant_times) & (variant_times <= factor * fastest)
        times[workload] = np.where(keep, base, np.inf)
    return times


def _fastest(times: np.ndarray, among: np.ndarray) -> float:
    """The smallest time among the rows `among` (inf when none)."""
    return float(times[among].min()) if among.any() else np.inf
