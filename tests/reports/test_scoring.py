"""AlgoPerf scoring on hand-made trials whose scores can be worked out on paper."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import UsageError
from reports.held_out import apply_held_out_rule
from reports.scoring import (
    benchmark_scores,
    performance_profiles,
    selected_trials,
    time_ratios,
    workload_times,
)

REPO = Path(__file__).resolve().parents[2]

# (submission, workload, study, time_to_target_s or None)
Row = tuple[str, str, int, float | None]


def _trials(
    rows: list[Row], hardware_class: str = "cpu-x", ruleset: str = "external"
) -> pd.DataFrame:
    """A minimal trials frame: the columns scoring reads."""
    return pd.DataFrame(
        {
            "submission": [r[0] for r in rows],
            "workload": [r[1] for r in rows],
            "study": [r[2] for r in rows],
            "time_to_target_s": [np.nan if r[3] is None else r[3] for r in rows],
            "hardware_class": hardware_class,
            "ruleset": ruleset,
        }
    )


def test_times_are_min_over_trials_then_median_over_studies() -> None:
    trials = _trials(
        [
            ("a", "w", 0, 300.0),
            ("a", "w", 0, None),
            ("a", "w", 0, 100.0),  # study 0: min = 100
            ("a", "w", 1, 200.0),  # study 1: 200
            ("a", "w", 2, None),
            ("a", "w", 2, None),  # study 2: inf
            ("b", "w", 0, 50.0),
            ("b", "w", 1, None),  # two studies: median(50, inf) = inf (np.median)
        ]
    )
    times = workload_times(trials)
    assert times.loc["a", "w"] == 200.0
    assert math.isinf(times.loc["b", "w"])


def test_score_worked_out_by_hand() -> None:
    # Ratios: a = [100/100, 300/200] = [1, 1.5]; b = [250/100, 200/200] = [2.5, 1].
    trials = _trials(
        [("a", "w1", 0, 100.0), ("a", "w2", 0, 300.0), ("b", "w1", 0, 250.0), ("b", "w2", 0, 200.0)]
    )
    ratios = time_ratios(workload_times(trials))
    assert ratios.loc["a"].tolist() == [1.0, 1.5] and ratios.loc["b"].tolist() == [2.5, 1.0]
    # tau = 1, 2, 3, 4: rho_a = .5, 1, 1, 1 -> area (.75 + 1 + 1) = 2.75;
    # rho_b = .5, .5, 1, 1 -> 2.25.
    scores = benchmark_scores(trials, num_points=4)
    assert scores["a"] == pytest.approx(2.75 / 3, abs=1e-12)
    assert scores["b"] == pytest.approx(2.25 / 3, abs=1e-12)
    assert list(scores.index) == ["a", "b"]


def test_profile_grid_is_algoperf_default() -> None:
    trials = _trials([("a", "w1", 0, 100.0), ("b", "w1", 0, 150.0)])
    profiles = performance_profiles(workload_times(trials))
    assert profiles.shape == (2, 100)
    assert profiles.columns[0] == 1.0 and profiles.columns[-1] == 4.0
    assert (profiles.loc["a"] == 1.0).all()
    assert profiles.loc["b"].iloc[0] == 0.0 and profiles.loc["b"].iloc[-1] == 1.0
    assert benchmark_scores(trials)["a"] == pytest.approx(1.0, abs=1e-12)


def test_failing_submission_gets_inf_and_loses_credit() -> None:
    # b never reaches w2 and has no trial at all on w3: inf on both; only w1 (ratio 1) counts.
    trials = _trials(
        [
            ("a", "w1", 0, 100.0),
            ("a", "w2", 0, 100.0),
            ("a", "w3", 0, 100.0),
            ("b", "w1", 0, 100.0),
            ("b", "w2", 0, None),
        ]
    )
    times = workload_times(trials)
    assert math.isinf(times.loc["b", "w2"]) and math.isinf(times.loc["b", "w3"])
    scores = benchmark_scores(trials, num_points=4)
    assert scores["a"] == pytest.approx(1.0, abs=1e-12)
    assert scores["b"] == pytest.approx(1 / 3, abs=1e-12)


def test_workload_nobody_solves_counts_in_divisor() -> None:
    # w2 unsolved by all: no credit to anyone, still 1 of 2 workloads. b's ratio on w1 is 2.
    trials = _trials(
        [("a", "w1", 0, 100.0), ("a", "w2", 0, None), ("b", "w1", 0, 200.0), ("b", "w2", 0, None)]
    )
    assert time_ratios(workload_times(trials))["w2"].isna().all()
    scores = benchmark_scores(trials, num_points=4)
    assert scores["a"] == pytest.approx(0.5, abs=1e-12)  # rho = .5 everywhere
    assert scores["b"] == pytest.approx(1.25 / 3, abs=1e-12)  # rho = 0, .5, .5, .5


def test_mixed_hardware_classes_need_a_filter() -> None:
    trials = pd.concat(
        [
            _trials([("a", "w", 0, 100.0), ("b", "w", 0, 200.0)], hardware_class="gpu-h100"),
            _trials([("a", "w", 0, 1.0)], hardware_class="cpu-x"),
        ]
    )
    with pytest.raises(UsageError, match="pass --hardware-class with one of them"):
        benchmark_scores(trials)
    scores = benchmark_scores(trials, hardware_class="gpu-h100", num_points=4)
    assert scores["a"] == pytest.approx(1.0) and scores["b"] == pytest.approx(2.5 / 3)
    with pytest.raises(UsageError, match="no trials"):
        benchmark_scores(trials, hardware_class="tpu")


def test_ruleset_filter() -> None:
    trials = pd.concat(
        [
            _trials([("a", "w", 0, 100.0)], ruleset="external"),
            _trials([("a", "w", 0, 10.0), ("b", "w", 0, 10.0)], ruleset="self"),
        ]
    )
    with pytest.raises(UsageError, match="ruleset"):
        workload_times(trials)
    assert workload_times(trials, ruleset="self").index.tolist() == ["a", "b"]


def test_import_reports_loads_no_framework() -> None:
    code = "import reports, sys; assert 'torch' not in sys.modules and 'jax' not in sys.modules"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_only_the_latest_version_of_a_submission_and_workload_counts() -> None:
    trials = _trials(
        [("a", "w", 0, 100.0), ("a", "w", 0, 10.0), ("b", "w", 0, 50.0), ("b", "w", 0, 20.0)]
    )
    # a was edited after its first trial (new source hash); w's version is the same throughout.
    trials["submission_hash"] = ["old", "old", "h1", "h1"]
    trials.loc[1, "submission_hash"] = "new"
    trials["workload_version"] = 1
    trials["created_utc"] = ["2026-01-01", "2026-01-02", "2026-01-01", "2026-01-01"]
    times = workload_times(trials)
    assert times.loc["a", "w"] == 10.0  # only the new version's trial
    assert times.loc["b", "w"] == 20.0
    trials.loc[0, "created_utc"] = "2026-01-03"  # now the old hash is the most recent
    assert workload_times(trials).loc["a", "w"] == 100.0


def test_selected_trial_rule_and_its_tie_breaks() -> None:
    nan = np.nan
    trials = pd.DataFrame(
        {  # (submission, study): which trial wins, and by which rule
            "submission": ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"] * 2,
            "workload": "w",
            "scale": "smoke",
            "study": 0,
            "trial_index": [0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 2],
            "time_to_target_s": [nan, 50.0, 40.0, 40.0, 40.0, 40.0, nan, nan, nan, 9.0, 9.0],
            "steps_to_target": [nan, 5, 8, 9, 7, 7, nan, nan, nan, 3, 3],
            "best_metric": [0.1, 0.5, 0.9, 0.1, 0.2, 0.3, 0.5, 0.7, nan, 0.4, 0.4],
            "target_direction": ["min"] * 3 + ["max"] * 3 + ["max"] * 3 + ["min"] * 2,
        }
    )
    chosen = selected_trials(trials).set_index("submission")["trial_index"].to_dict()
    # a: least time; b: time tie -> fewer steps -> higher metric (max); c: none reached -> best
    # metric (max, null worst); d: full tie -> smaller trial index
    assert chosen == {"a": 2, "b": 2, "c": 1, "d": 2}
    assert len(selected_trials(pd.concat([trials, trials.assign(study=1)]))) == 8


def _variant(workload: str) -> str:
    return json.dumps({"variant": f"{workload}_tanh", "held_out": True})


def test_held_out_rows_are_not_workloads_and_gate_with_the_rule() -> None:
    # base w: a 100, b 300 (within 4x), c never. Held-out w_tanh: a 100, b 500 (> 4 x 100), c 50.
    base = _trials(
        [
            ("a", "w", 0, 100.0),
            ("b", "w", 0, 300.0),
            ("c", "w", 0, None),
            ("a", "v", 0, 10.0),
            ("b", "v", 0, 10.0),
            ("c", "v", 0, 10.0),
        ]
    )
    held = _trials([("a", "w", 0, 100.0), ("b", "w", 0, 500.0), ("c", "w", 0, 50.0)])
    trials = pd.concat([base.assign(ruleset_json="{}"), held.assign(ruleset_json=_variant("w"))])
    times = workload_times(trials)
    assert list(times.columns) == ["v", "w"]  # the variant is no workload of W
    assert times["w"].tolist()[:2] == [100.0, 300.0]  # and leaves its base's times alone
    ruled = workload_times(trials, held_out_rule=True)
    assert ruled["w"].tolist() == [100.0, np.inf, np.inf]  # b: held-out too slow; c: base unsolved
    assert ruled["v"].tolist() == [10.0] * 3  # no variant: untouched
    # b keeps v (ratio 1) and loses w: rho_b = 1/2 at every tau; a keeps ratio 1 on both.
    scores = benchmark_scores(trials, num_points=4, held_out_rule=True)
    assert scores["b"] == pytest.approx(0.5) and scores["a"] == pytest.approx(1.0)


def test_held_out_rule_fastest_among_base_solvers_only() -> None:
    # c reaches the held-out variant fastest (1 s) but never the base: it sets no bar for a.
    base = pd.DataFrame({"w": [100.0, np.inf]}, index=["a", "c"])
    held = pd.DataFrame({("w", "w_tanh"): [20.0, 1.0]}, index=["a", "c"])
    held.columns = pd.MultiIndex.from_tuples(held.columns, names=["workload", "variant"])
    assert apply_held_out_rule(base, held)["w"].tolist() == [100.0, np.inf]
    missing = apply_held_out_rule(base, held.iloc[[1]])  # a has no held-out trial: inf
    assert np.isinf(missing["w"]).all()
