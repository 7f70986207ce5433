"""A trial killed mid-run resumes from its last checkpoint exactly where an uninterrupted one is.

The trial runs in a child process that is SIGKILLed once its progress file shows two eval points;
the same spec then runs again with the same live folder. Its eval curve must equal the
uninterrupted run's value for value (batches are functions of (seed, step), and the checkpoint
holds model, optimizer, workload EMA, RNG and record), its training seconds must grow
monotonically, and the record must say it restarted once.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.live import LiveTrial
from harness.recorder import TrialOutcome
from harness.runner import run_trial
from harness.submission import load_submission
from harness.trial import TrialSpec
from workloads import get_workload


def _spec(submission: str, workload: str, data_dir: Path) -> TrialSpec:
    point = load_submission(submission).search_space.center()
    return TrialSpec(
        workload=workload,
        scale="smoke",
        submission=submission,
        hparams_json=TrialSpec.canonical_hparams(point),
        seed=5,
        data_dir=str(data_dir),
        stop_at_target=False,
        max_steps=160,
    )


def _run_in_child(spec_dict: dict[str, object], live_root: str) -> None:
    run_trial(TrialSpec.from_dict(spec_dict), get_workload, live_root)


def _kill_after_two_evals(spec: TrialSpec, live_root: Path) -> list[int]:
    child = mp.get_context("spawn").Process(
        target=_run_in_child, args=(spec.to_dict(), str(live_root))
    )
    child.start()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            folders = list(live_root.glob("*"))
            if folders and len(LiveTrial(folders[0]).read_progress()) >= 2:
                break
            assert child.is_alive(), "the trial ended before it could be killed"
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join()
    return [p["step"] for p in LiveTrial(folders[0]).read_progress()]


@pytest.mark.parametrize(
    "submission, workload",
    [
        ("adamw", "digits"),
        ("adamw-optax", "digits"),
        pytest.param("adamw", "diffusion", marks=pytest.mark.slow),
    ],
)
def test_a_killed_trial_resumes_exactly(
    submission: str,
    workload: str,
    data_dir: Path,
    tmp_path: Path,
    fresh_process: Callable[..., TrialOutcome],
) -> None:
    spec = _spec(submission, workload, data_dir)
    uninterrupted = fresh_process(spec)
    killed_at = _kill_after_two_evals(spec, tmp_path)
    assert len(killed_at) >= 2
    resumed = fresh_process(spec, tmp_path)

    assert resumed.row["status"] == uninterrupted.row["status"]
    assert resumed.row["restarts"] == 1 and uninterrupted.row["restarts"] == 0
    assert resumed.row["steps"] == uninterrupted.row["steps"]
    expected = [(e["step"], e["metric"], e["value"]) for e in uninterrupted.evals]
    assert [(e["step"], e["metric"], e["value"]) for e in resumed.evals] == expected
    times = [e["train_time_s"] for e in resumed.evals]
    assert times == sorted(times) and times[0] > 0
    assert len(resumed.train_losses) == len(uninterrupted.train_losses)
