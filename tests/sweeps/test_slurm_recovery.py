"""A trial's job whose launch record was never written (the driver died right after `sbatch`)
is found by its job name and adopted, not submitted a second time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.live import LiveTrial
from harness.results import ResultsStore
from harness.submission import load_submission
from harness.trial import TrialSpec
from sweeps.identity import spec_trial_id
from sweeps.launchers import SlurmLauncher, read_launch, supervise
from sweeps.slurm.profile import load_profile


def test_a_job_without_launch_record_is_adopted(
    slurm_cluster: Any, data_dir: Path, tmp_path: Path
) -> None:
    adamw = load_submission("adamw")
    spec = TrialSpec(
        workload="digits",
        scale="smoke",
        submission=str(adamw.folder),
        hparams_json=TrialSpec.canonical_hparams(adamw.search_space.center()),
        seed=3,
        data_dir=str(data_dir),
        max_steps=60,
        stop_at_target=False,
    )
    root = str(tmp_path / "results")
    launcher = SlurmLauncher(load_profile("local"), root)
    trial_id = spec_trial_id(spec)
    orphan = launcher.start(spec, root, attempt=1)  # submitted; its record never written
    points: list[dict[str, Any]] = []

    supervise(launcher, spec, trial_id, root, points.append)

    (row,) = ResultsStore(root).read_trials().to_dict("records")
    assert row["slurm_job_id"] == orphan.job_id  # the one job ran the trial
    assert row["status"] == "budget_exhausted" and row["steps"] == 60
    assert [p["step"] for p in points] == sorted({p["step"] for p in points})
    assert read_launch(LiveTrial.under(ResultsStore(root).live_root, trial_id)) is None
