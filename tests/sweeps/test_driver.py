"""Local sweeps through real Ray Tune: every granted trial runs once, and an interrupted sweep
finishes on a re-run without repeating finished trials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.results import ResultsStore
from harness.submission import load_submission
from sweeps.driver import pending_specs, run_sweep
from sweeps.rulesets import ExternalRuleset, WorkloadAtScale

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_sweep_runs_the_ruleset_budget_once(tmp_path: Path, data_dir: Path) -> None:
    ruleset = ExternalRuleset(num_trials=2, num_studies=2, seed=3)
    adamw = load_submission("adamw")
    specs = ruleset.plan(
        str(adamw.folder), adamw.search_space, [WorkloadAtScale("digits", "smoke")], str(data_dir)
    )
    results = tmp_path / "results"
    summaries = run_sweep(specs, results, num_cpus=2, show_progress=False)
    assert len(summaries) == 4
    trials = ResultsStore(results).read_trials()
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert sorted(zip(trials["study"], trials["trial_index"], strict=True)) == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    assert set(trials["ruleset"]) == {"external"}
    assert trials["ruleset_json"].str.contains('"num_trials": 2').all()
    evals = ResultsStore(results).read_evals()
    assert set(evals["trial_id"]) == set(trials["trial_id"])
    # A second run finds everything done and starts nothing.
    assert pending_specs(specs, results) == []
    assert run_sweep(specs, results, num_cpus=2, show_progress=False) == []


def test_interrupted_sweep_finishes_on_rerun(tmp_path: Path, data_dir: Path) -> None:
    results = tmp_path / "results"
    command = [
        sys.executable,
        "-m",
        "sweeps.cli",
        "sweep",
        "adamw",
        "--workloads",
        "digits",
        "--trials",
        "3",
        "--studies",
        "1",
        "--cpus",
        "1",
        "--seed",
        "5",
        "--max-steps",
        "150",
        "--quiet",
        "--results",
        str(results),
        "--data-dir",
        str(data_dir),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while len(ResultsStore(results).completed_trial_ids()) < 1:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = ResultsStore(results).read_trials().set_index("trial_id")["created_utc"]
    assert 1 <= len(before) < 3, f"interrupt came too late to test resuming: {stderr}"

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr
    after = ResultsStore(results).read_trials().set_index("trial_id")["created_utc"]
    assert len(after) == 3 and after.index.is_unique
    # Trials finished before the interrupt were kept, not run again.
    assert (after.loc[before.index] == before).all()
