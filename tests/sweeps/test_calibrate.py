"""`optbench calibrate`: the reference over seeds, the 95%-of-seeds value, resumable."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.results import ResultsStore
from harness.workload import Direction, Target
from sweeps.calibrate import _calibrated_value
from sweeps.cli import main


def test_the_calibrated_value_is_what_95_percent_of_seeds_reach() -> None:
    loss = Target("val_loss", 2.0, Direction.MIN)
    values = [2.0 + i / 1000 for i in range(20)]  # 2.000 .. 2.019
    assert _calibrated_value(values, loss) == pytest.approx(2.018)  # 19 of 20 seeds
    assert _calibrated_value([2.1234] * 5, loss) == pytest.approx(2.124)  # rounded leniently up
    accuracy = Target("test_accuracy", 0.9, Direction.MAX)
    assert _calibrated_value([0.9, 0.95, 0.97, 0.99, 0.9999], accuracy) == pytest.approx(0.9)
    assert _calibrated_value([0.95, float("nan")], accuracy) == -math.inf  # a diverged seed counts


@pytest.mark.slow
def test_calibrate_runs_the_reference_per_seed_and_resumes(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "calibration"
    argv = [
        "calibrate",
        "digits",
        "--seeds",
        "2",
        "--results",
        str(results),
        "--data-dir",
        str(data_dir),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    trials = ResultsStore(results).read_trials()
    assert sorted(trials["seed"]) == [0, 1] and set(trials["ruleset"]) == {"calibration"}
    assert set(trials["submission"]) == {"adamw"} and set(trials["steps"]) == {400}  # no early stop
    assert "| 0 |" in out and "| 1 |" in out and "2/2 seeds reach test_accuracy >=" in out
    assert "Declared target test_accuracy >= 0.994" in out
    files = sorted(p.name for p in (results / "trials").iterdir())
    assert main(argv) == 0  # resumes: both trials are in the store, nothing runs again
    assert sorted(p.name for p in (results / "trials").iterdir()) == files
    assert capsys.readouterr().out.splitlines()[-1] == out.splitlines()[-1]


def test_calibrate_refuses_an_unknown_workload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calibrate", "imagenet", "--results", str(tmp_path / "r")]) == 2
    assert "unknown workload 'imagenet'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_every_calibration_recipe_is_a_point_of_the_adamw_reference() -> None:
    """Calibration trains `submissions/adamw` through the runner, which refuses points outside
    its search space: each workload's recipe must lie inside it, at every scale."""
    from harness.contract import Hyperparameters
    from harness.submission import load_submission
    from workloads import WORKLOADS

    space = load_submission("adamw").search_space
    for workload in WORKLOADS.values():
        for point in workload.reference_hparams.values():
            space.validate_point(Hyperparameters(point))
