"""Target calibration: the reference AdamW over seeds, and the value it reliably reaches.

Protocol (`optbench calibrate WORKLOAD --scale SCALE --seeds N`): train `submissions/adamw` at the
workload's `reference_hparams[scale]` for the whole step budget (no stop at the target), once per
seed 0..N-1, each trial in its own process through the runner, stored in a results store (so an
interrupted calibration resumes). Per seed, take the best target metric at or before the step hint
(~80% of the budget) at the workload's own eval cadence. The calibrated target is the value that
at least ceil(0.95 · N) seeds reach by then, rounded to 3 decimals in the lenient direction; the
declared target is confirmed when it is no stricter than that. Changing a target bumps the
workload's version.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.isolation import run_isolated
from harness.target import Direction, Target
from harness.trial import TrialSpec
from sweeps.driver import pending_specs
from sweeps.identity import spec_trial_id
from workloads import WORKLOADS, get_workload

__all__ = ["CalibrationReport", "calibrate", "calibration_specs", "read_calibration"]

RULESET = "calibration"
SEED_SHARE = 0.95


def calibration_specs(
    workload: str,
    scale: str,
    seeds: int,
    data_dir: str,
    device: str = "cpu",
    hparams: dict[str, float] | None = None,
    command_line: str = "",
) -> list[TrialSpec]:
    """One full-budget reference trial per seed."""
    point = hparams or WORKLOADS[workload].reference_hparams[scale]
    return [
        TrialSpec(
            workload=workload,
            scale=scale,
            submission="adamw",
            hparams_json=TrialSpec.canonical_hparams(point),
            seed=seed,
            data_dir=data_dir,
            ruleset=RULESET,
            trial_index=seed,
            device=device,
            stop_at_target=False,
            command_line=command_line,
        )
        for seed in range(seeds)
    ]


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    """What the reference reached, per seed, and the target that follows.

    Attributes:
      table: one row per seed: seed, train_time_s, wall_time_s, best_by_hint, final, and
        step_to_target (the first eval meeting the declared target; NaN if never).
      declared: the workload's declared target.
      step_hint: the step by which seeds must reach the target.
      calibrated: the value ceil(0.95 · seeds) seeds reach by `step_hint`, rounded leniently.
    """

    table: pd.DataFrame
    declared: Target
    step_hint: int
    calibrated: float

    @property
    def confirmed(self) -> bool:
        """Whether the declared target is no stricter than the calibrated value."""
        return self.declared.is_met(self.calibrated)

    def markdown(self) -> str:
        lines = [
            "| seed | train s | wall s | best by step hint | final | step to target |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.table.itertuples():
            step = "-" if math.isnan(row.step_to_target) else str(int(row.step_to_target))
            lines.append(
                f"| {row.seed} | {row.train_time_s:.1f} | {row.wall_time_s:.1f} | "
                f"{row.best_by_hint:.4f} | {row.final:.4f} | {step} |"
            )
        need = math.ceil(SEED_SHARE * len(self.table))
        sign = "<=" if self.declared.direction is Direction.MIN else ">="
        verdict = "confirmed" if self.confirmed else "NOT confirmed"
        lines += [
            "",
            f"{need}/{len(self.table)} seeds reach {self.declared.metric} {sign} "
            f"{self.calibrated:g} by step {self.step_hint}.",
            f"Declared target {self.declared.metric} {sign} {self.declared.value:g}: {verdict}.",
        ]
        return "\n".join(lines)


def read_calibration(results_root: str | Path, specs: list[TrialSpec]) -> CalibrationReport:
    """The report of the calibration trials of `specs` found under `results_root` (pandas)."""
    from harness.results import ResultsStore

    store = ResultsStore(results_root)
    ids = {spec_trial_id(spec): spec.seed for spec in specs}
    trials = store.read_trials()
    trials = trials[trials["trial_id"].isin(ids)]
    evals = store.read_evals()
    config = WORKLOADS[specs[0].workload].configs[specs[0].scale]
    target, hint = config.target, config.budget.step_hint
    evals = evals[evals["trial_id"].isin(ids) & (evals["metric"] == target.metric)]
    rows = []
    for trial in trials.itertuples():
        curve = evals[evals["trial_id"] == trial.trial_id].sort_values("step")
        by_hint = curve[curve["step"] <= hint]["value"]
        best = by_hint.min() if target.direction is Direction.MIN else by_hint.max()
        met = curve[[target.is_met(v) for v in curve["value"]]]
        rows.append(
            {
                "seed": ids[trial.trial_id],
                "status": trial.status,
                "train_time_s": trial.train_time_s,
                "wall_time_s": trial.wall_time_s,
                "best_by_hint": best,
                "final": trial.final_metric,
                "step_to_target": met["step"].iloc[0] if len(met) else math.nan,
            }
        )
    table = pd.DataFrame(rows).sort_values("seed").reset_index(drop=True)
    return CalibrationReport(
        table, target, hint, _calibrated_value(list(table["best_by_hint"]), target)
    )


def _calibrated_value(best_by_hint: list[float], target: Target) -> float:
    """The value ceil(0.95 n) of the n seeds reach, rounded to 3 decimals leniently."""
    need = math.ceil(SEED_SHARE * len(best_by_hint))
    finite = [v if math.isfinite(v) else math.inf for v in best_by_hint]
    if target.direction is Direction.MIN:
        value = sorted(finite)[need - 1]
        return math.ceil(value * 1000) / 1000 if math.isfinite(value) else math.inf
    value = sorted((v if v != math.inf else -math.inf for v in finite), reverse=True)[need - 1]
    return math.floor(value * 1000) / 1000 if math.isfinite(value) else -math.inf


def calibrate(
    specs: list[TrialSpec],
    results_root: str | Path,
    parallel: int = 1,
    on_done: Callable[[dict[str, object]], None] | None = None,
) -> CalibrationReport:
    """Runs the specs' trials not yet in the store, then reads the report."""
    root = str(Path(results_root).resolve())
    todo = pending_specs(specs, root)
    run_isolated(todo, root, get_workload, max_parallel=parallel, on_done=on_done)
    return read_calibration(root, specs)
