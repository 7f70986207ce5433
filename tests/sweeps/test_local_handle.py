"""A local trial's end as its supervisor sees it when the fork server that started it is gone.

Ray kills a dead driver's workers and their children, the trial's fork server among them, while
the trial process itself (the fork server's child) runs on. multiprocessing then reports exit code
255 for the trial whatever it does; the supervisor must not record that as the trial failing.
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import signal
import time
from pathlib import Path

from harness.results import ResultsStore
from harness.submission import load_submission
from harness.trial import TrialSpec
from sweeps.identity import spec_trial_id
from sweeps.launchers import LocalLauncher

DEADLINE_S = 120


def _spec(data_dir: Path, max_steps: int) -> TrialSpec:
    adamw = load_submission("adamw")
    return TrialSpec(
        workload="digits",
        scale="smoke",
        submission=str(adamw.folder),
        hparams_json=TrialSpec.canonical_hparams(adamw.search_space.center()),
        seed=0,
        data_dir=str(data_dir),
        max_steps=max_steps,
        stop_at_target=False,
    )


def test_trial_outliving_its_fork_server_is_watched_to_its_own_row(
    data_dir: Path, tmp_path: Path
) -> None:
    spec, root = _spec(data_dir, max_steps=400), str(tmp_path / "results")
    handle = LocalLauncher().start(spec, root, attempt=1)
    server_pid = multiprocessing.forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    assert server_pid is not None and not handle.done()

    os.kill(server_pid, signal.SIGKILL)  # left unreaped: multiprocessing reaps and restarts it

    assert not handle.done(), "the fork server's end was taken for the trial's"
    deadline = time.monotonic() + DEADLINE_S
    while not handle.done():
        assert time.monotonic() < deadline, "the trial did not finish"
        time.sleep(0.1)
    ending = handle.ending(ResultsStore(root), spec_trial_id(spec))
    assert ending.status is None, ending  # the trial stored its own row
    (row,) = ResultsStore(root).read_trials().to_dict("records")
    assert row["status"] in {"target_reached", "budget_exhausted"} and row["steps"] == 400
