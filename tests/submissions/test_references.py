"""Every reference submission trains through the runner, and all are tuned with equal freedom."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from harness.runner import run_trial
from harness.submission import Level, load_submission, reference_dir
from harness.trial import TrialSpec, TrialStatus
from sweeps.zoo import reference_names, zoo_specs, zoo_table
from workloads import WORKLOADS, get_workload

REFERENCES = reference_names()
# One of each kind of update on every workload (a factory, a matrix split, two full-control
# classes); the whole zoo on every smoke workload to the target is `python -m sweeps.zoo`.
ACROSS_WORKLOADS = [
    n for n in ("adamw", "muon", "sophia", "schedule-free-adamw") if n in REFERENCES
]
WARMUP_POINTS = [0.05, 0.02, 0.1]


def _trial(submission: str, workload: str, data_dir: Path, steps: int) -> dict:
    space = load_submission(submission).search_space
    spec = TrialSpec(
        workload=workload,
        scale="smoke",
        submission=submission,
        hparams_json=TrialSpec.canonical_hparams(space.center()),
        seed=0,
        data_dir=str(data_dir),
        max_steps=steps,
        stop_at_target=False,
    )
    return run_trial(spec, get_workload).row


def _assert_trained(row: dict, steps: int) -> None:
    assert row["status"] in (TrialStatus.BUDGET_EXHAUSTED, TrialStatus.TARGET_REACHED), row["error"]
    assert row["steps"] == steps
    assert all(math.isfinite(v) for v in (row["final_metric"], row["best_metric"]))


# The optimizer state each update rule keeps, in parameter-sized buffers (momentum, second moment,
# ...), read from its README's update rule; the memory accounting must count exactly that, up to
# scalar counters (a step count or an estimate per tensor: digits@smoke has 10 tensors).
STATE_BUFFERS = {
    "sgd": 0,
    **dict.fromkeys(("sgd-momentum", "sgd-nesterov", "lars", "lion", "signum"), 1),
    **dict.fromkeys(("adagrad", "rmsprop"), 1),
    **dict.fromkeys(("adam", "adamw", "adamw-optax", "nadamw", "radam", "adopt", "lamb"), 2),
    **dict.fromkeys(("sophia", "schedule-free-adamw", "adadelta"), 2),
    **dict.fromkeys(("amsgrad", "ademamix"), 3),
    "prodigy": 4,  # x0, s, and the two moments
}
SCALAR_SLACK_BYTES = 256
# Rules whose state is not a whole number of parameter copies: bounds on state / parameter bytes.
STATE_RATIO_BOUNDS = {
    "adafactor": (0.0, 0.25),  # factored second moment, no first moment
    "adamw-8bit": (0.5, 0.6),  # two 8-bit moments plus block scales
    "galore": (0.0, 1.0),  # moments in a low-rank projection
    "adam-mini": (1.0, 1.1),  # a full first moment, one second moment per block
    "muon": (1.0, 1.1),  # momentum on matrices; AdamW's two moments on the few others
    "shampoo": (2.0, math.inf),  # per-matrix preconditioners
    "soap": (2.0, math.inf),
    "lbfgs": (2.0, math.inf),  # its history of (s, y) pairs
}


def test_every_reference_declares_its_state() -> None:
    assert set(STATE_BUFFERS) | set(STATE_RATIO_BOUNDS) == set(REFERENCES)


@pytest.mark.parametrize("submission", REFERENCES)
def test_reference_trains_digits(submission: str, data_dir: Path) -> None:
    row = _trial(submission, "digits", data_dir, steps=20)
    _assert_trained(row, steps=20)
    state, params = row["optimizer_state_bytes"], row["params_bytes"]
    if submission in STATE_BUFFERS:
        assert abs(state - STATE_BUFFERS[submission] * params) <= SCALAR_SLACK_BYTES, (
            state,
            params,
        )
    else:
        low, high = STATE_RATIO_BOUNDS[submission]
        assert low <= state / params <= high, (state, params)


@pytest.mark.slow
@pytest.mark.parametrize("workload", sorted(set(WORKLOADS) - {"digits"}))
@pytest.mark.parametrize("submission", ACROSS_WORKLOADS)
def test_reference_trains_every_workload(submission: str, workload: str, data_dir: Path) -> None:
    _assert_trained(_trial(submission, workload, data_dir, steps=8), steps=8)


@pytest.mark.parametrize("name", REFERENCES)
def test_reference_has_its_files(name: str) -> None:
    folder = reference_dir() / name
    readme = (folder / "README.md").read_text()
    for heading in ("Update rule", "Source", "Defaults", "State memory"):
        assert heading in readme, f"{name}/README.md lacks {heading!r}"
    assert readme.startswith(f"# {name}")
    assert load_submission(name).level in (Level.FACTORY, Level.FULL_CONTROL)


@pytest.mark.parametrize("name", REFERENCES)
def test_search_space_has_equal_freedom(name: str) -> None:
    """lr (log, two decades wide), weight decay from 0, one momentum-like knob, warmup."""
    space = json.loads((reference_dir() / name / "search_space.json").read_text())
    assert len(space) == 4, f"{name}: {sorted(space)}"
    lr = space.pop("lr")
    assert lr["scaling"] == "log" and lr["max"] / lr["min"] == pytest.approx(100.0, rel=1e-6)
    decay = space.pop("weight_decay")
    assert decay["min"] == 0.0 and decay["scaling"] == "linear"
    assert space.pop("warmup_frac") == {"feasible_points": WARMUP_POINTS}
    ((knob, values),) = space.items()
    assert "feasible_points" in values and len(values["feasible_points"]) >= 2, (name, knob)


def test_submissions_readme_lists_every_reference() -> None:
    table = (reference_dir() / "README.md").read_text()
    for name in REFERENCES:
        assert f"[{name}]({name}/README.md)" in table, name


def test_zoo_table_reads_the_store(data_dir: Path, tmp_path: Path) -> None:
    """The zoo check's table is built from the store: reached, missed and failed cells."""
    from harness.isolation import run_isolated
    from harness.results import ResultsStore

    specs = zoo_specs(["adamw", "sgd-nesterov"], ["digits"], str(data_dir))
    specs = [dataclasses.replace(spec, max_steps=40) for spec in specs]
    run_isolated(specs, str(tmp_path), get_workload)
    table = zoo_table(ResultsStore(tmp_path).read_trials())
    rows = [
        line
        for line in table.splitlines()
        if line.startswith("| adamw |") or line.startswith("| sgd-nesterov |")
    ]
    assert len(rows) == 2
    for row in rows:  # one digits cell, then "reached at defaults" and "reached after tuning"
        assert row.count("/1 |") == 2 and ("✓" in row) == row.endswith("| 1/1 | 1/1 |")
