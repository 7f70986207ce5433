"""Every reference submission trains every smoke workload through the runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.runner import run_trial
from harness.submission import load_submission, reference_dir
from harness.trial import TrialSpec, TrialStatus
from workloads import WORKLOADS

REFERENCES = sorted(p.parent.name for p in reference_dir().glob("*/submission.py"))


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("submission", REFERENCES)
def test_reference_trains_workload(submission: str, workload: str, data_dir: Path) -> None:
    space = load_submission(submission).search_space
    spec = TrialSpec(workload=workload, scale="smoke", submission=submission,
                     hparams_json=TrialSpec.canonical_hparams(space.center()), seed=0,
                     data_dir=str(data_dir), max_steps=30, stop_at_target=False)  # fmt: skip
    row = run_trial(spec).row
    assert row["status"] in (TrialStatus.BUDGET_EXHAUSTED, TrialStatus.TARGET_REACHED), row["error"]
    assert row["steps"] == 30
    assert row["optimizer_state_bytes"] > 0
    losses = row["final_metric"], row["best_metric"]
    assert all(v == v for v in losses)  # finite, not NaN


def test_every_reference_has_its_files() -> None:
    for name in REFERENCES:
        folder = reference_dir() / name
        readme = (folder / "README.md").read_text()
        assert "State memory" in readme and "Update rule" in readme, name
        assert (folder / "search_space.json").is_file()


def test_adamw_optax_matches_adamw_state_memory(data_dir: Path) -> None:
    """The bridge's state is counted exactly: 2 fp32 moments per parameter plus an int32 count."""
    point = load_submission("adamw").search_space.center()
    rows = {}
    for name in ("adamw", "adamw-optax"):
        spec = TrialSpec(workload="digits", scale="smoke", submission=name,
                         hparams_json=TrialSpec.canonical_hparams(point), seed=0,
                         data_dir=str(data_dir), max_steps=5, stop_at_target=False)  # fmt: skip
        rows[name] = run_trial(spec).row
    params = rows["adamw"]["params_bytes"]
    assert rows["adamw-optax"]["optimizer_state_bytes"] == 2 * params + 4
    assert abs(rows["adamw"]["final_metric"] - rows["adamw-optax"]["final_metric"]) < 0.02
