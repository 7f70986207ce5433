"""AlgoPerf's files as AlgoPerf publishes them: held-out lists, targets in `scoring/`, self-tuning
logs, CSVs outside the layout, and bad logs that must write nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import ResultsSchemaError, UsageError
from harness.results import ResultsStore
from reports.algoperf_import import import_algoperf
from reports.algoperf_targets import find_targets_file, load_held_out, load_targets
from reports.held_out import held_out_variants, workload_variants
from reports.scoring import benchmark_scores
from sweeps.cli import main
from tests.reports.algoperf_logs import SMALL_LOG, write_eval_csv

ALGOPERF = Path(__file__).resolve().parents[1] / "data" / "algoperf"
ROUND_V06 = ALGOPERF / "previous_leaderboards" / "algoperf_v06" / "logs"
LOGS = ROUND_V06 / "external_tuning"
TARGETS = ALGOPERF / "scoring" / "workload_targets.json"
TARGETS_V05 = ALGOPERF / "scoring" / "workload_targets_v05.json"
HELD_OUT_V05 = ALGOPERF / "scoring" / "algoperf_v05" / "held_out_workloads_algoperf_v05.json"
PUBLISHED = {"shampoo": 0.6244, "baseline": 0.4590}
FRAMEWORK = {"baseline": "jax", "shampoo": "pytorch"}


def _copy_logs(dest: Path, workloads: tuple[str, ...]) -> None:
    """The v0.6 logs of these workloads, both submissions, every study."""
    for submission, framework in FRAMEWORK.items():
        for study in sorted((LOGS / submission).glob("study_*")):
            for workload in workloads:
                folder = study / f"{workload}_{framework}"
                shutil.copytree(folder, dest / folder.relative_to(LOGS))


def _add_variant(
    logs: Path, submission: str, base: str, variant: str, time_factor: float = 1.0
) -> None:
    """Every study of `submission` also ran `variant`: its CSVs are `base`'s, times scaled."""
    framework = FRAMEWORK[submission]
    for study in sorted((logs / submission).glob("study_*")):
        copy = study / f"{variant}_{framework}"
        shutil.copytree(study / f"{base}_{framework}", copy)
        for path in copy.glob("trial_*/eval_measurements.csv"):
            frame = pd.read_csv(path)
            frame["score"] *= time_factor
            frame.to_csv(path, index=False)


def _scores(results: Path, **select: object) -> dict[str, float]:
    scores = benchmark_scores(ResultsStore(results).read_trials(), **select)  # type: ignore[arg-type]
    return {name: round(float(value), 4) for name, value in scores.items()}


# -- a variant is held out only when the round's list says so ---------------------------------


def test_an_unlisted_variant_moves_no_score(tmp_path: Path) -> None:
    """baseline also ran ogbg_gelu, which v0.6 does not hold out: with the held-out rule on,
    shampoo (which never ran it) keeps ogbg, and both published scores stand."""
    logs = tmp_path / "external_tuning"
    shutil.copytree(LOGS, logs)
    _add_variant(logs, "baseline", "ogbg", "ogbg_gelu")
    summary = import_algoperf(logs, ResultsStore(tmp_path / "r"), TARGETS)
    assert summary.held_out == () and summary.unscored_variants == ("ogbg_gelu",)
    trials = ResultsStore(tmp_path / "r").read_trials()
    assert (workload_variants(trials) == "ogbg_gelu").sum() > 0
    assert (held_out_variants(trials) != "").sum() == 0
    assert _scores(tmp_path / "r") == PUBLISHED
    assert _scores(tmp_path / "r", held_out_rule=True) == PUBLISHED


def test_held_out_list_from_the_targets_file_or_a_held_out_file(tmp_path: Path) -> None:
    """Both ran fastmri_tanh (held out in v0.5; shampoo 6x slower there, so it loses fastmri),
    baseline also ogbg_gelu (not held out): the scores equal those of the same logs without
    ogbg_gelu, whichever file gives the list."""
    plain, extra = tmp_path / "plain" / "external_tuning", tmp_path / "extra" / "external_tuning"
    for logs in (plain, extra):
        _copy_logs(logs, ("fastmri", "ogbg", "wmt"))
        for submission, factor in (("baseline", 1.0), ("shampoo", 6.0)):  # shampoo: > 4x
            _add_variant(logs, submission, "fastmri", "fastmri_tanh", factor)
    _add_variant(extra, "baseline", "ogbg", "ogbg_gelu")
    import_algoperf(plain, ResultsStore(tmp_path / "r-plain"), TARGETS, held_out_path=HELD_OUT_V05)
    expected = _scores(tmp_path / "r-plain", held_out_rule=True)
    for name, kwargs in {
        "file": {"held_out_path": HELD_OUT_V05},  # AlgoPerf's own list file
        "targets": {},  # v0.5's targets file carries held_out_workloads
    }.items():
        targets = TARGETS if name == "file" else _v06_targets_with_v05_held_out(tmp_path)
        results = tmp_path / f"r-{name}"
        summary = import_algoperf(extra, ResultsStore(results), targets, **kwargs)  # type: ignore[arg-type]
        assert "fastmri_tanh" in summary.held_out and summary.unscored_variants == ("ogbg_gelu",)
        trials = ResultsStore(results).read_trials()
        assert set(held_out_variants(trials)) == {"", "fastmri_tanh"}
        assert _scores(results, held_out_rule=True) == expected
        assert _scores(results) == _scores(tmp_path / "r-plain")
    assert expected != _scores(tmp_path / "r-plain")  # the rule bites on these logs


def _v06_targets_with_v05_held_out(tmp_path: Path) -> Path:
    """v0.6's targets with v0.5's held_out_workloads entry, the shape v0.5's file publishes it in
    (v0.5's own targets differ, and these are v0.6 logs)."""
    raw = json.loads(TARGETS.read_text())
    raw["held_out_workloads"] = json.loads(TARGETS_V05.read_text())["held_out_workloads"]
    path = tmp_path / "workload_targets_held_out.json"
    path.write_text(json.dumps(raw))
    return path


def test_published_held_out_lists_agree() -> None:
    assert load_targets(TARGETS).held_out_workloads == ()
    v05 = load_targets(TARGETS_V05)
    assert v05.held_out_workloads is not None and len(v05.held_out_workloads) == 6
    assert set(load_held_out(HELD_OUT_V05, v05)) == set(v05.held_out_workloads)


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{not json", "cannot read"), ('{"a": 1}', "JSON list"), ('["ogbg"]', "not a variant")],
)
def test_bad_held_out_file_is_one_line(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "held_out.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=problem):
        load_held_out(path, load_targets(TARGETS))


# -- the targets file where AlgoPerf keeps it ----------------------------------------------------


def _checkout(tmp_path: Path, round_folder: str | None) -> Path:
    """A results-repository checkout holding both published targets files and one trial's log."""
    repo = tmp_path / "submissions_algorithms"
    (repo / "scoring").mkdir(parents=True)
    shutil.copy(TARGETS, repo / "scoring" / "workload_targets.json")
    shutil.copy(TARGETS_V05, repo / "scoring" / "workload_targets_v05.json")
    parts = ["previous_leaderboards", round_folder] if round_folder else []
    logs = repo.joinpath(*parts, "logs", "external_tuning")
    trial = "baseline/study_0/ogbg_jax/trial_1"
    shutil.copytree(LOGS / trial, logs / trial)
    return logs


@pytest.mark.parametrize(
    ("round_folder", "version"), [("algoperf_v05", "0.5"), ("algoperf_v06", "0.6"), (None, "0.6")]
)
def test_targets_found_in_the_checkouts_scoring_folder(
    tmp_path: Path, round_folder: str | None, version: str
) -> None:
    logs = _checkout(tmp_path, round_folder)
    found = find_targets_file(logs)
    assert found.parent.name == "scoring" and load_targets(found).benchmark_version == version
    summary = import_algoperf(logs, ResultsStore(tmp_path / "r"))
    assert summary.benchmark_version == version
    row = ResultsStore(tmp_path / "r").read_trials().iloc[0]
    assert row.hardware_class == f"algoperf-v{version}-8xV100"


# -- self-tuning logs -------------------------------------------------------------------------


def test_self_tuning_logs_are_recorded_under_the_self_ruleset(tmp_path: Path) -> None:
    both = import_algoperf(ROUND_V06, ResultsStore(tmp_path / "both"), TARGETS)  # logs/: both
    assert both.rulesets == {"external": 236, "self": 24} and both.written == 260
    trials = ResultsStore(tmp_path / "both").read_trials()
    assert trials["trial_id"].is_unique
    assert set(trials.loc[trials.ruleset == "self", "submission"]) == {"schedule_free_adamw_v2"}
    assert _scores(tmp_path / "both", ruleset="external") == PUBLISHED
    # a folder without a ruleset in its path, imported with --ruleset self
    plain = tmp_path / "runs"
    shutil.copytree(ROUND_V06 / "self_tuning", plain)
    assert (
        main(
            [
                "import-algoperf",
                str(plain),
                "--results",
                str(tmp_path / "r"),
                "--targets",
                str(TARGETS),
                "--ruleset",
                "self",
            ]
        )
        == 0
    )
    assert set(ResultsStore(tmp_path / "r").read_trials()["ruleset"]) == {"self"}


def test_ruleset_that_contradicts_the_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "import-algoperf",
            str(ROUND_V06 / "self_tuning"),
            "--results",
            str(tmp_path / "r"),
            "--targets",
            str(TARGETS),
            "--ruleset",
            "external",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "self-tuning folder" in err[0]
    assert not (tmp_path / "r").exists()


# -- CSVs outside the layout, bad CSVs ---------------------------------------------------------


def test_csvs_outside_the_layout_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = tmp_path / "logs"
    write_eval_csv(logs, "sub/study_0/ogbg_jax/trial_1", SMALL_LOG)
    stray = write_eval_csv(
        logs, "sub/study_0/trial_2", SMALL_LOG
    )  # no workload folder (as in v0.5's logs)
    write_eval_csv(logs, "sub/study_0/ogbg_tf/trial_1", SMALL_LOG)  # not jax or pytorch
    summary = import_algoperf(logs, ResultsStore(tmp_path / "r"), TARGETS)
    assert summary.written == 1 and len(summary.outside_layout) == 2
    assert (
        main(
            [
                "import-algoperf",
                str(logs),
                "--results",
                str(tmp_path / "r2"),
                "--targets",
                str(TARGETS),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "left out 2 eval_measurements.csv" in err and str(stray.parent.parent) in err


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({**SMALL_LOG, "global_step": [10, "twenty", 30]}, "'twenty'"),
        ({**SMALL_LOG, "score": [1.0, 2.0, "late"]}, "'late'"),
        ({**SMALL_LOG, "global_step": [10, 20.5, 30]}, "whole step"),
        ({k: v for k, v in SMALL_LOG.items() if k != "score"}, "score"),
    ],
)
def test_one_bad_csv_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: dict, named: str
) -> None:
    logs = tmp_path / "logs"
    write_eval_csv(logs, "a/study_0/ogbg_jax/trial_1", SMALL_LOG)
    path = write_eval_csv(logs, "b/study_0/ogbg_jax/trial_1", bad)  # sorted between two good ones
    write_eval_csv(logs, "c/study_0/ogbg_jax/trial_1", SMALL_LOG)
    with pytest.raises(ResultsSchemaError, match=named):
        import_algoperf(logs, ResultsStore(tmp_path / "r"), TARGETS)
    code = main(
        ["import-algoperf", str(logs), "--results", str(tmp_path / "r"), "--targets", str(TARGETS)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(path) in err[0] and named in err[0]
    assert ResultsStore(tmp_path / "r").read_trials().empty
