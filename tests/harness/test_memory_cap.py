"""A trial's memory cap: a measured peak above it ends the trial `over_budget`,
keeping its metrics."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.recorder import TrialOutcome
from harness.trial import FINISHED, ResolvedTrial, TrialSpec, TrialStatus

ADAMW_POINT = {"lr": 3e-3, "weight_decay": 0.05, "beta1": 0.9, "warmup_frac": 0.05}


def _spec(data_dir: Path | str, **kwargs: Any) -> TrialSpec:
    return TrialSpec(
        workload="digits",
        scale="smoke",
        submission="adamw",
        hparams_json=TrialSpec.canonical_hparams(ADAMW_POINT),
        seed=1,
        data_dir=str(data_dir),
        max_steps=40,
        **kwargs,
    )


def test_trial_ids_without_a_cap_are_unchanged() -> None:
    spec = TrialSpec(
        workload="digits",
        scale="smoke",
        submission="adamw",
        hparams_json='{"lr": 0.003}',
        seed=1,
        data_dir="/d",
    )
    trial_id = ResolvedTrial(spec, 1, "adamw", "abc").trial_id
    assert trial_id == "f407a5a29043ef7ab14e"  # the id before caps existed
    capped = TrialSpec(**{**spec.to_dict(), "memory_cap_bytes": 2**30})
    assert ResolvedTrial(capped, 1, "adamw", "abc").trial_id != trial_id


def test_a_peak_above_the_cap_is_over_budget_with_its_metrics_kept(
    data_dir: Path, fresh_process: Callable[..., TrialOutcome]
) -> None:
    outcome = fresh_process(_spec(data_dir, memory_cap_bytes=1))
    row = outcome.row
    assert row["status"] == TrialStatus.OVER_BUDGET, row["error"]
    assert row["memory_cap_bytes"] == 1 and row["peak_bytes"] > 1
    assert row["error"] is None  # measured, not crashed
    assert row["steps"] == 40 and math.isfinite(row["best_metric"])
    assert {e["step"] for e in outcome.evals} >= {40}


def test_a_peak_within_the_cap_ends_normally(
    data_dir: Path, fresh_process: Callable[..., TrialOutcome]
) -> None:
    outcome = fresh_process(_spec(data_dir, memory_cap_bytes=64 * 2**30))
    row = outcome.row
    assert row["status"] in FINISHED, row["error"]
    assert row["memory_cap_bytes"] == 64 * 2**30 and 0 < row["peak_bytes"] < 64 * 2**30


def test_a_submission_is_told_the_cap(data_dir: Path) -> None:
    from workloads import get_workload

    workload = get_workload("nanogpt", "smoke-l-b8", data_dir)
    info = workload.info("cpu", max_time_s=10.0, memory_cap_bytes=100 * 2**20)
    assert (info.memory_cap_bytes, info.max_time_s, info.scale) == (100 * 2**20, 10.0, "smoke-l-b8")
    assert info.batch_size == 8 and workload.info("cpu").memory_cap_bytes is None
