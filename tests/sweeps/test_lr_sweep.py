"""The learning-rate sweep: its grid, its range placement, and one tiny sweep through the runner."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.results import ResultsStore
from sweeps.lr_sweep import lr_grid, main, place_range


def test_grid_is_the_quarter_decade_lattice_a_decade_beyond_the_range() -> None:
    grid = lr_grid(1e-4, 1e-2, step_decades=0.25, margin_decades=1.0)
    assert len(grid) == 17 and grid[0] == 1e-5 and grid[-1] == 0.1
    assert grid[1:5] == [1.78e-5, 3.16e-5, 5.62e-5, 1e-4]
    # A range off the lattice is rounded outward onto it, so sweeps share their points.
    muon = lr_grid(2e-3, 0.2, step_decades=0.25, margin_decades=1.0)
    assert muon[0] == 1.78e-4 and muon[-1] == 3.16 and set(grid) & set(muon) == set(grid[5:])


def test_placement_keeps_the_width_and_centres_between_the_optima() -> None:
    bounds, fits = place_range([1e-2, 3.16e-2], width_decades=2.0)
    assert fits and bounds[1] / bounds[0] == pytest.approx(100.0, rel=1e-6)
    for lr in (1e-2, 3.16e-2):
        assert math.log10(lr / bounds[0]) >= 0.499 and math.log10(bounds[1] / lr) >= 0.499
    # Optima 1.5 decades apart cannot both lie half a decade inside a 2-decade range.
    _, fits = place_range([1e-3, 3.16e-2], width_decades=2.0)
    assert not fits
    # A range that already holds them half a decade inside stays; one that does not, moves.
    assert place_range([1e-2, 3.16e-2], 2.0, now=(1e-3, 1e-1)) == ((1e-3, 1e-1), True)
    moved, fits = place_range([1e-2, 3.16e-2], 2.0, now=(1e-4, 1e-2))
    assert fits and moved != (1e-4, 1e-2)


def test_sweep_trains_outside_the_range_stores_and_resumes(data_dir: Path, tmp_path: Path) -> None:
    """adamw's range stops at 1e-2 (or 1e-1): lr 0.5 trains only through the widened copy."""
    out = tmp_path / "table.md"
    argv = [
        "--submissions",
        "adamw",
        "--workloads",
        "digits",
        "--lrs",
        "0.001,0.5",
        "--seeds",
        "1",
        "--max-steps",
        "40",
        "--results",
        str(tmp_path / "store"),
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    trials = ResultsStore(tmp_path / "store").read_trials()
    assert len(trials) == 2 and set(trials["status"]) <= {"budget_exhausted", "diverged"}
    assert sorted(json.loads(h)["lr"] for h in trials["hparams_json"]) == [0.001, 0.5]
    record = json.loads(out.with_suffix(".json").read_text())
    (pair,) = record["pairs"]
    assert pair["grid"] == [0.001, 0.5] and pair["best_lr"] in (0.001, 0.5)
    assert [p["seeds"] for p in pair["points"]] == [1, 1]
    assert "| adamw | digits |" in out.read_text()
    assert main(argv) == 0  # a re-run finds both trials stored and runs nothing
    assert len(ResultsStore(tmp_path / "store").read_trials()) == 2


def test_unknown_workload_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--workloads", "nope", "--results", str(tmp_path / "store")]
    assert main(argv) == 2
    assert "unknown nope" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()
