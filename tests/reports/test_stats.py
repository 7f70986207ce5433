"""Report statistics on trials written to a real store, with answers worked out by hand."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.errors import UsageError
from harness.results import EVALS_SCHEMA, TRIALS_SCHEMA, ResultsStore
from harness.workload import Direction, Target
from reports.scoring import workload_times
from reports.stats import (
    PowerLaw,
    data_equivalence,
    fit_power_law,
    gated_workload_times,
    reference_speedups,
    seed_gate,
)

Curve = list[tuple[int, float]]  # (step, value) of the target metric
# One study's selected trial, as scoring picks it: the least time to target wins.
TRUE_LAW = PowerLaw(a=50.0, b=0.3, c=2.0)


def _trial(
    submission: str, workload: str, study: int, index: int = 0, **values: Any
) -> dict[str, Any]:
    key = f"{submission}/{workload}/{study}/{index}".encode()
    row: dict[str, Any] = dict.fromkeys(TRIALS_SCHEMA.names)
    row.update(
        trial_id=hashlib.sha256(key).hexdigest()[:16],
        submission=submission,
        workload=workload,
        scale="smoke",
        study=study,
        trial_index=index,
        ruleset="external",
        hardware_class="cpu-x",
        git_dirty=False,
        target_metric="val_loss",
        target_value=3.0,
        target_direction="min",
        target_seeds=3,
        target_gate_margin=0.1,
    )
    row.update(values)
    return row


def _evals(trial_id: str, curve: Curve, metric: str = "val_loss", tokens_per_step: int = 0):
    rows = []
    for eval_index, (step, value) in enumerate(curve):
        row: dict[str, Any] = dict.fromkeys(EVALS_SCHEMA.names)
        row.update(
            trial_id=trial_id,
            eval_index=eval_index,
            step=step,
            metric=metric,
            value=value,
            git_dirty=False,
            tokens=step * tokens_per_step if tokens_per_step else None,
        )
        rows.append(row)
    return rows


def _store(tmp_path: Path, trials: list[tuple[dict[str, Any], Curve]], **eval_kw: Any):
    """Writes (trial row, curve) pairs to a fresh store; returns (trials, evals) as read back."""
    store = ResultsStore(tmp_path / "results")
    for row, curve in trials:
        assert store.write_trial(
            row, _evals(row["trial_id"], curve, row["target_metric"], **eval_kw)
        )
    return store.read_trials(), store.read_evals()


def _reached(steps: int, time_s: float | None = None) -> dict[str, Any]:
    return dict(
        status="target_reached",
        steps_to_target=steps,
        time_to_target_s=float(steps) if time_s is None else time_s,
    )


# -- seed gate ---------------------------------------------------------------------------------


@pytest.fixture
def gate_results(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Target val_loss <= 3.0, 3 seeds, margin 0.1; evals every 100 steps; trials stop at target."""
    rows = [
        # good: reaches at 100, 200, 300; at step 100 the mean is 3.2, at 200 the values are 2.80
        # (held since it stopped at 100), 2.85, 2.90 -> the gate first passes there: claimed 200
        (_trial("good", "w", 0, **_reached(100)), [(0, 9.0), (100, 2.8)]),
        (_trial("good", "w", 0, 1), [(0, 9.0), (100, 5.0), (200, 3.5)]),  # not selected
        (_trial("good", "w", 1, **_reached(200)), [(0, 9.0), (100, 3.3), (200, 2.85)]),
        (_trial("good", "w", 2, **_reached(300)), [(0, 9.0), (100, 3.5), (200, 2.9), (300, 2.7)]),
        # lucky: the gate passes at no step; at the last (400) the values are 2.90 (held), 2.95
        # (held), 2.99 -> mean 2.9467, statistic 0.0924 < 0.1
        (_trial("lucky", "w", 0, **_reached(100)), [(0, 9.0), (100, 2.9)]),
        (_trial("lucky", "w", 1, **_reached(200)), [(0, 9.0), (100, 3.3), (200, 2.95)]),
        (
            _trial("lucky", "w", 2, **_reached(400)),
            [(0, 9.0), (100, 3.5), (200, 3.1), (300, 3.05), (400, 2.99)],
        ),
        # few: two studies only
        (_trial("few", "w", 0, **_reached(100)), [(0, 9.0), (100, 2.0)]),
        (_trial("few", "w", 1, **_reached(100)), [(0, 9.0), (100, 2.0)]),
        # never: no study reaches the target
        *[
            (_trial("never", "w", k, status="budget_exhausted"), [(0, 9.0), (500, 3.2)])
            for k in range(3)
        ],
        # algoperf: no gate recorded (imported logs), accuracy target (max)
        *[
            (
                _trial(
                    "algoperf",
                    "acc",
                    k,
                    target_metric="validation/accuracy",
                    target_value=0.9,
                    target_direction="max",
                    target_seeds=None,
                    target_gate_margin=None,
                    **_reached(100),
                ),
                [(100, 0.91)],
            )
            for k in range(2)
        ],
    ]
    return _store(tmp_path, rows)


def test_seed_gate_rows(gate_results: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    gate = seed_gate(*gate_results)
    good = gate.loc[("good", "w")]
    assert (good.n, good.needed, good.claimed_steps, good.margin) == (3, 3, 200.0, 0.1)
    assert good["mean"] == pytest.approx(2.85)
    assert good.statistic == pytest.approx(0.15 * math.sqrt(3))
    assert good.passes and good.reason == ""

    lucky = gate.loc[("lucky", "w")]
    assert lucky["mean"] == pytest.approx((2.9 + 2.95 + 2.99) / 3)
    assert lucky.statistic == pytest.approx((3.0 - lucky["mean"]) * math.sqrt(3))
    assert math.isinf(lucky.claimed_steps) and not lucky.passes
    assert lucky.reason == "statistic 0.09238 < margin 0.1 at the last eval"

    assert not gate.loc[("few", "w")].passes
    assert gate.loc[("few", "w")].reason == "2 seeds < 3 needed"
    never = gate.loc[("never", "w")]
    assert math.isinf(never.claimed_steps) and not never.passes
    assert never.reason.startswith("target not reached")

    imported = gate.loc[("algoperf", "acc")]
    assert imported.passes and imported.reason == "no gate recorded" and pd.isna(imported.needed)
    assert imported.statistic == pytest.approx((0.91 - 0.9) * math.sqrt(2))  # mirrored for max


def test_gated_times_drop_failed_gates(gate_results: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    trials, evals = gate_results
    trials = trials[trials.workload == "w"]
    plain = workload_times(trials)
    gated = gated_workload_times(trials, evals)
    assert plain.loc["good", "w"] == gated.loc["good", "w"] == 200.0
    assert plain.loc["lucky", "w"] == 200.0 and math.isinf(gated.loc["lucky", "w"])
    assert plain.loc["few", "w"] == 100.0 and math.isinf(gated.loc["few", "w"])


@pytest.mark.parametrize(
    ("values", "direction", "seeds", "margin"),
    [
        ([2.8, 2.85, 2.9], "min", 3, 0.1),  # passes
        ([2.9, 2.95, 3.1], "min", 3, 0.1),  # mean beats the target, not by the margin
        ([2.5, 2.5], "min", 3, 0.0),  # too few seeds
        ([2.5, math.nan, 2.5], "min", 3, 0.0),  # one diverged
        ([0.95, 0.93, 0.94, 0.96], "max", 4, 0.05),  # passes, mirrored
        ([0.91, 0.905, 0.9], "max", 3, 0.05),  # not by the margin
        ([3.0, 3.0, 3.0], "min", 3, 0.0),  # exactly at the target, no margin: passes
    ],
)
def test_seed_gate_agrees_with_target_gate_passes(
    tmp_path: Path, values: list[float], direction: str, seeds: int, margin: float
) -> None:
    target_value = 3.0 if direction == "min" else 0.9
    rows = [
        (
            _trial(
                "s",
                "w",
                k,
                target_value=target_value,
                target_direction=direction,
                target_seeds=seeds,
                target_gate_margin=margin,
                **_reached(100),
            ),
            [(0, 9.0 if direction == "min" else 0.0), (100, v)],
        )
        for k, v in enumerate(values)
    ]
    gate = seed_gate(*_store(tmp_path, rows)).loc[("s", "w")]
    target = Target("val_loss", target_value, Direction(direction), seeds, gate_margin=margin)
    assert gate.passes == target.gate_passes(values)
    if all(map(math.isfinite, values)) and len(values) >= seeds:
        assert gate.passes == (gate.statistic >= margin - 1e-12)


# -- speedups against a reference ---------------------------------------------------------------


def _times(submission: str, workload: str, times: list[float | None]) -> list[dict[str, Any]]:
    """One trial per study with the given time to target (None: never reached); steps = time / 2."""
    return [
        _trial(submission, workload, k, status="budget_exhausted")
        if t is None
        else _trial(submission, workload, k, **_reached(int(t // 2), t), tokens_to_target=int(t))
        for k, t in enumerate(times)
    ]


@pytest.fixture
def speed_trials(tmp_path: Path) -> pd.DataFrame:
    rows = [
        *_times("ref", "w", [100.0, 120.0, 110.0]),
        *_times("fast", "w", [50.0, 60.0, 55.0]),
        *_times("never", "w", [None, None, None]),
        *_times("ref", "w2", [None, None, 500.0]),  # the reference mostly fails on w2
        *_times("fast", "w2", [40.0, 44.0, 42.0]),
    ]
    trials, _ = _store(tmp_path, [(r, []) for r in rows])
    return trials


def test_speedup_median_ratio_ci_and_welch(speed_trials: pd.DataFrame) -> None:
    table = reference_speedups(speed_trials, "ref")
    fast = table.loc[("fast", "w")]
    assert fast.speedup == pytest.approx(110.0 / 55.0)
    # every resampled median ratio lies between the extremes 100/60 and 120/50
    assert 100 / 60 <= fast.ci_low <= fast.speedup <= fast.ci_high <= 120 / 50
    assert fast.ci_low < fast.ci_high
    assert (fast.n_sub, fast.n_ref) == (3, 3)
    assert fast.welch_t > 0 and fast.welch_p < 0.01
    own = table.loc[("ref", "w")]
    assert own.speedup == 1.0 and own.welch_t == pytest.approx(0.0)
    never = table.loc[("never", "w")]
    assert never.speedup == 0.0 and "never reaches" in never.note and math.isnan(never.welch_t)
    unreached_ref = table.loc[("fast", "w2")]
    assert math.isnan(unreached_ref.speedup) and "reference never reaches" in unreached_ref.note


def test_speedup_is_seeded_and_pool_independent(speed_trials: pd.DataFrame, tmp_path: Path) -> None:
    first = reference_speedups(speed_trials, "ref", n_boot=500, seed=3)
    assert first.equals(reference_speedups(speed_trials, "ref", n_boot=500, seed=3))
    other, _ = _store(tmp_path / "more", [(r, []) for r in _times("other", "w", [10.0, 30.0])])
    bigger = reference_speedups(pd.concat([speed_trials, other]), "ref", n_boot=500, seed=3)
    pd.testing.assert_frame_equal(bigger.drop(index="other", level="submission"), first)
    assert bigger.loc[("other", "w")].speedup == pytest.approx(110.0 / 20.0)


def test_speedup_in_steps_and_unrecorded_tokens(speed_trials: pd.DataFrame) -> None:
    steps = reference_speedups(speed_trials, "ref", quantity="steps_to_target")
    assert steps.loc[("fast", "w")].speedup == pytest.approx(55.0 / 27.0)  # steps = time // 2
    trials = speed_trials.copy()
    trials.loc[trials.submission == "fast", "tokens_to_target"] = None
    tokens = reference_speedups(trials, "ref", quantity="tokens_to_target")
    assert math.isnan(tokens.loc[("fast", "w")].speedup)
    assert tokens.loc[("fast", "w")].note == "tokens_to_target not recorded"


def test_speedup_bad_input(speed_trials: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match="'adamw'.*fast, never, ref"):
        reference_speedups(speed_trials, "adamw")
    with pytest.raises(UsageError, match="quantity"):
        reference_speedups(speed_trials, "ref", quantity="seconds")


# -- data equivalence ---------------------------------------------------------------------------

TOKENS_PER_STEP = 10_000
STEPS = [100, 200, 400, 700, 1000, 2000, 4000, 7000, 10_000]  # 1e6 .. 1e8 tokens


def _law_curve(scale: float, last_step: int, wiggle: float) -> Curve:
    """TRUE_LAW at scale * D tokens, with a tiny deterministic per-study wiggle."""
    return [
        (s, TRUE_LAW.loss_at(scale * s * TOKENS_PER_STEP) * (1 + wiggle * (-1) ** i))
        for i, s in enumerate(STEPS)
        if s <= last_step
    ]


def test_power_law_recovered_and_inverted() -> None:
    tokens = np.array(STEPS, dtype=float) * TOKENS_PER_STEP
    fit = fit_power_law(tokens, [TRUE_LAW.loss_at(d) for d in tokens])
    assert fit.a == pytest.approx(TRUE_LAW.a, rel=1e-3)
    assert fit.b == pytest.approx(TRUE_LAW.b, rel=1e-3)
    assert fit.c == pytest.approx(TRUE_LAW.c, rel=1e-3)
    assert fit.tokens_for(fit.loss_at(3e7)) == pytest.approx(3e7, rel=1e-9)
    assert math.isinf(fit.tokens_for(fit.c)) and math.isinf(fit.tokens_for(fit.c - 1))
    with pytest.raises(UsageError, match="4 finite points"):
        fit_power_law(tokens[:3], [3.0, 2.9, 2.8])


def test_data_equivalence_recovers_a_doubled_data_efficiency(tmp_path: Path) -> None:
    final_step = 4000  # 4e7 tokens: "double" ends at the loss the reference has at 8e7
    rows = []
    for k, wiggle in enumerate([2e-4, -2e-4, 0.0]):
        for name, scale, steps_to_target in (
            ("ref", 1.0, 8000),
            ("double", 2.0, 4000),
            ("quad", 4.0, 2000),
        ):
            last = 10_000 if name == "ref" else final_step
            row = _trial(
                name,
                "lm",
                k,
                **_reached(steps_to_target),
                tokens=last * TOKENS_PER_STEP,
                final_metric=TRUE_LAW.loss_at(scale * last * TOKENS_PER_STEP),
            )
            rows.append((row, _law_curve(scale, last, wiggle)))
        accuracy = _trial("ref", "acc", k, target_direction="max", **_reached(100))
        rows.append((accuracy, [(100, 0.9)]))
    trials, evals = _store(tmp_path, rows, tokens_per_step=TOKENS_PER_STEP)
    table = data_equivalence(trials, evals, "ref")
    assert list(table.index) == [("double", "lm"), ("quad", "lm"), ("ref", "lm")]  # no max targets
    assert table.loc[("double", "lm")].ratio == pytest.approx(2.0, rel=0.02)
    assert table.loc[("ref", "lm")].ratio == pytest.approx(1.0, rel=0.02)
    assert table.loc[("double", "lm")].steps_speedup == pytest.approx(2.0)
    assert table.loc[("ref", "lm")].fit_b == pytest.approx(TRUE_LAW.b, rel=0.05)
    assert table.loc[("double", "lm")].note == ""
    quad = table.loc[("quad", "lm")]  # 1.6e8 reference tokens: past its 1e8, extrapolated
    assert quad.ratio == pytest.approx(4.0, rel=0.05) and "extrapolated" in quad.note
