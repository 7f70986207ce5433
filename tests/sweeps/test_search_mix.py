"""One leaderboard, one search algorithm: a store mixing them is refused with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.results import TRIALS_SCHEMA, ResultsStore
from sweeps.cli import main


def _row(trial_id: str, search: str) -> dict[str, object]:
    row: dict[str, object] = {name: None for name in TRIALS_SCHEMA.names}
    ruleset = {"name": "external", "num_studies": 1, "num_trials": 1, "seed": 0, "search": search}
    row.update(
        trial_id=trial_id,
        workload="digits",
        scale="smoke",
        submission="adamw",
        ruleset="external",
        ruleset_json=json.dumps(ruleset, sort_keys=True),
        study=0,
        trial_index=0,
        status="target_reached",
        hardware_class="cpu",
        git_dirty=False,
    )
    return row


@pytest.mark.parametrize("command", ["leaderboard", "score"])
def test_a_store_mixing_search_algorithms_is_refused(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ResultsStore(tmp_path)
    store.write_trial(_row("a" * 20, "quasi-random"), [])
    store.write_trial(_row("b" * 20, "tpe"), [])
    assert main([command, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "mix search algorithms (quasi-random, tpe)" in err
    assert not (tmp_path / "leaderboard.md").exists()
