"""The trial ids of the committed smoke-suite stores are what today's id gives their trials.

A trial's id is how a re-run, `sweep --resume` and every reader find it; if the id function
changed, every stored trial would be run again. Each store's sweep is read from its manifest (the
options that decide the id beyond the row: `--max-steps`, stopping at the target, the time budget),
each row from the store; the id is recomputed from them with the row's own workload version and
submission hash (the submissions' files have changed since some of these trials ran).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.results import ResultsStore
from harness.trial import ResolvedTrial, TrialSpec

STORES = Path(__file__).resolve().parents[2] / "results" / "smoke-suite"


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def _spec(row: pd.Series, argv: list[str]) -> TrialSpec:
    max_steps, budget_s = _option(argv, "--max-steps"), _option(argv, "--time-budget-s")
    # Trained to the budget: by `scaling` (uncensored curves), on the fixed-resource track (it
    # reports the best metric within the budget), or when asked (--train-to-budget).
    to_budget = argv[0] == "scaling" or "fixed-resource" in argv or "--train-to-budget" in argv
    cap = row["memory_cap_bytes"]
    return TrialSpec(
        workload=row["workload"],
        scale=row["scale"],
        submission=row["submission"],
        hparams_json=row["hparams_json"],
        seed=int(row["seed"]),
        data_dir="unused: not part of the id",
        ruleset=row["ruleset"],
        ruleset_json=row["ruleset_json"],
        study=int(row["study"]),
        trial_index=int(row["trial_index"]),
        max_steps=int(max_steps) if max_steps else None,
        max_time_s=float(budget_s) if budget_s else None,
        stop_at_target=not to_budget,
        memory_cap_bytes=None if pd.isna(cap) else int(cap),
    )


@pytest.mark.parametrize("store", ["fixed-model", "fixed-resource", "scaling"])
def test_every_stored_trial_keeps_its_id(store: str) -> None:
    root = STORES / store
    argv = json.loads((root / "_sweep" / "manifest.json").read_text())["argv"]
    trials = ResultsStore(root).read_trials()
    assert len(trials) >= 48
    for _, row in trials.iterrows():
        trial = ResolvedTrial(
            _spec(row, argv),
            int(row["workload_version"]),
            row["submission"],
            row["submission_hash"],
        )
        assert trial.trial_id == row["trial_id"], row[["submission", "workload", "study"]]
