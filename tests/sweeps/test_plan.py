"""A sweep is a plan: built once from the command line, saved in the manifest, resumed as saved.

One real sweep (one trial through Ray Tune) makes the store; every resume after it finds the
trial stored, so it plans, runs no trial, and writes the leaderboard.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.results import ResultsStore
from harness.trial import RulesetName, SearchAlgorithm, Track
from sweeps.cli import build_parser, main
from sweeps.commands import plan_of
from sweeps.plan import LauncherKind, SweepCommand, SweepPlan, read_plan
from sweeps.rulesets import WorkloadAtScale

SWEEP = ["sweep", "adamw", "--workloads", "digits", "--trials", "1", "--studies", "1"]
SMALL = ["--max-steps", "3", "--cpus", "1", "--quiet"]


def _plan(argv: list[str]) -> SweepPlan:
    args = build_parser().parse_args(argv)
    args.argv = argv
    return plan_of(args)


def test_a_plan_is_typed_and_survives_its_json() -> None:
    resource = ["--track", "fixed-resource", "--memory-cap", "1MiB", "--time-budget-s", "5"]
    plan = _plan([*SWEEP, "--search", "tpe", *resource, "--results", "r"])
    assert plan.command is SweepCommand.SWEEP and plan.launch.kind is LauncherKind.LOCAL
    assert plan.ruleset.name is RulesetName.EXTERNAL
    assert plan.ruleset.search is SearchAlgorithm.TPE
    assert plan.ruleset.track is Track.FIXED_RESOURCE and plan.ruleset.memory_cap_bytes == 2**20
    assert plan.workloads == (WorkloadAtScale("digits", "smoke"),)
    again = SweepPlan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan and again.ruleset.search is SearchAlgorithm.TPE


def test_submit_and_scaling_plans_say_what_ends_them() -> None:
    submit = _plan(["submit", "example-nadamw", "--references", "adamw,muon"])
    assert submit.submissions == ("example-nadamw", "adamw", "muon")
    assert submit.highlight == "example-nadamw"
    scaling = _plan(["scaling", "nanogpt", "--submissions", "adamw,muon", "--reference", "muon"])
    assert scaling.train_to_budget and scaling.reference == "muon"
    assert [w.scale for w in scaling.workloads] == ["smoke-xs", "smoke-s", "smoke-m", "smoke-l"]


def _manifest(results: Path) -> dict:
    return json.loads((results / "_sweep" / "manifest.json").read_text())


def _write(results: Path, manifest: dict) -> None:
    (results / "_sweep" / "manifest.json").write_text(json.dumps(manifest))


def _resume(results: Path) -> int:
    return main(["sweep", "--resume", "--results", str(results), "--quiet"])


@pytest.mark.slow
def test_resume_loads_the_saved_plan_and_old_manifests_still_resume(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    options = [*SMALL, "--data-dir", str(data_dir), "--results", str(results)]
    assert main([*SWEEP, *options]) == 0
    stored = ResultsStore(results).completed_trial_ids()
    assert len(stored) == 1
    manifest = _manifest(results)
    assert read_plan(results) == SweepPlan.from_json(manifest["plan"])

    # The saved plan runs as saved: its command line is not parsed again.
    _write(results, {**manifest, "argv": ["sweep", "--no-such-option"]})
    assert _resume(results) == 0
    assert "wrote" in capsys.readouterr().err

    # A manifest from before plans were saved (argv, launcher, lanes) resumes from its argv.
    old = {key: manifest[key] for key in ("argv", "launcher", "started_unix", "lanes")}
    _write(results, old)
    assert _resume(results) == 0
    assert _manifest(results)["plan"] == manifest["plan"]  # and it is saved with its plan now
    assert ResultsStore(results).completed_trial_ids() == stored  # no trial ran again
    assert main(["status", "--results", str(results)]) == 0
    assert "finished: every planned trial is in the store" in capsys.readouterr().out

    # A plan that is not one is refused in one line naming the manifest; nothing changes.
    broken = {**manifest, "plan": {**manifest["plan"], "ruleset": {"search": "grid"}}}
    _write(results, broken)
    assert _resume(results) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"optbench: error: in {results / '_sweep' / 'manifest.json'}: ")
    assert "'plan' is not a sweep plan" in err[-1]
    assert _manifest(results) == broken
