"""The AlgoPerf importer: real v0.6 logs reproduce the published scores; bad input fails clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import ResultsSchemaError, UsageError
from harness.results import TRIALS_SCHEMA, ResultsStore
from reports.algoperf_import import import_algoperf
from reports.algoperf_targets import base_workload, find_targets_file, is_minimized, load_targets
from reports.scoring import (
    benchmark_scores,
    integrate_profiles,
    performance_profiles,
    workload_times,
)
from tests.reports.algoperf_logs import SMALL_LOG, write_eval_csv

# AlgoPerf's results repository, the parts these tests need (tests/data/algoperf/README.md)
ALGOPERF = Path(__file__).resolve().parents[1] / "data" / "algoperf"
LOGS = ALGOPERF / "previous_leaderboards" / "algoperf_v06" / "logs" / "external_tuning"
SELF_LOGS = LOGS.parent / "self_tuning"
TARGETS = ALGOPERF / "scoring" / "workload_targets.json"  # v0.6
TARGETS_V05 = ALGOPERF / "scoring" / "workload_targets_v05.json"
HELD_OUT_V05 = ALGOPERF / "scoring" / "algoperf_v05" / "held_out_workloads_algoperf_v05.json"
PUBLISHED = {"shampoo": 0.6244, "baseline": 0.4590}  # AlgoPerf v0.6 external-tuning leaderboard


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ResultsStore, int]:
    """The whole v0.6 external-tuning log folder imported once into a fresh store."""
    store = ResultsStore(tmp_path_factory.mktemp("algoperf") / "results")
    return store, import_algoperf(LOGS, store).written  # targets found in the checkout's scoring/


def test_import_reproduces_published_scores(imported: tuple[ResultsStore, int]) -> None:
    store, written = imported
    trials = store.read_trials()
    assert written == len(trials) == len(list(LOGS.glob("*/study_*/*/trial_*/*.csv")))
    scores = benchmark_scores(trials)
    assert {name: round(float(score), 4) for name, score in scores.items()} == PUBLISHED
    assert list(scores.index) == ["shampoo", "baseline"]


def test_reimport_is_idempotent(imported: tuple[ResultsStore, int]) -> None:
    store, _ = imported
    trials_before, evals_before = len(store.read_trials()), len(store.read_evals())
    summary = import_algoperf(LOGS, store, TARGETS)
    assert (summary.written, summary.already_stored) == (0, trials_before)
    assert len(store.read_trials()) == trials_before
    assert len(store.read_evals()) == evals_before


def test_trial_row_matches_its_csv(imported: tuple[ResultsStore, int]) -> None:
    store, _ = imported
    trials = store.read_trials()
    row = trials[
        (trials.submission == "baseline")
        & (trials.workload == "ogbg")
        & (trials.study == 0)
        & (trials.trial_index == 1)
    ].iloc[0]
    csv = pd.read_csv(LOGS / "baseline/study_0/ogbg_jax/trial_1/eval_measurements.csv")
    target = json.loads(TARGETS.read_text())["workloads"]["ogbg"]["validation_target_value"]
    met = csv[csv["validation/mean_average_precision"] >= target]
    assert set(trials.columns) == set(TRIALS_SCHEMA.names)
    assert (row.ruleset, row.scale, row.hardware_class) == (
        "external",
        "full",
        "algoperf-v0.6-8xV100",
    )
    assert (row.target_metric, row.target_value, row.target_direction) == (
        "validation/mean_average_precision",
        target,
        "max",
    )
    assert row.steps == csv["global_step"].iloc[-1] and row.train_time_s == csv["score"].iloc[-1]
    assert row.best_metric == csv["validation/mean_average_precision"].max()
    assert row.command_line == f"import-algoperf {LOGS}" and row.created_utc
    if met.empty:
        assert row.status == "budget_exhausted" and pd.isna(row.time_to_target_s)
    else:
        assert row.status == "target_reached"
        assert row.time_to_target_s == met["score"].iloc[0]
        assert row.steps_to_target == met["global_step"].iloc[0]
    evals = store.read_evals()
    evals = evals[evals.trial_id == row.trial_id]
    curves = [c for c in csv.columns if c.split("/")[0] in ("train", "validation", "test")]
    assert len(evals) == len(csv) * len(curves)
    assert set(evals.metric) == set(curves) and evals.tokens.isna().all()
    last = evals[evals.eval_index == len(csv) - 1]
    assert (last.step == csv["global_step"].iloc[-1]).all()


# -- small hand-made logs ---------------------------------------------------------------------


def _write_log(root: Path, columns: dict, workload_dir: str = "ogbg_jax") -> Path:
    """One trial's eval CSV at root/logs/sub/study_0/<workload_dir>/trial_1; returns its path."""
    return write_eval_csv(root / "logs", f"sub/study_0/{workload_dir}/trial_1", columns)


def test_small_log_is_imported(tmp_path: Path) -> None:
    _write_log(tmp_path, SMALL_LOG)
    store = ResultsStore(tmp_path / "results")
    assert import_algoperf(tmp_path / "logs", store, TARGETS).written == 1
    row = store.read_trials().iloc[0]
    assert (row.submission, row.study, row.trial_index) == ("sub", 0, 1)
    assert (row.time_to_target_s, row.steps_to_target) == (2.0, 20)
    assert (row.final_metric, row.best_metric, row.steps) == (0.29, 0.3, 30)
    assert len(store.read_evals()) == 3 * 2


@pytest.mark.parametrize("missing", ["score", "global_step", "validation/mean_average_precision"])
def test_malformed_csv_names_file_and_column(tmp_path: Path, missing: str) -> None:
    path = _write_log(tmp_path, {k: v for k, v in SMALL_LOG.items() if k != missing})
    store = ResultsStore(tmp_path / "results")
    with pytest.raises(ResultsSchemaError) as info:
        import_algoperf(tmp_path / "logs", store, TARGETS)
    assert str(path) in str(info.value) and missing in str(info.value)
    assert store.read_trials().empty


def test_unknown_framework_suffix_is_a_usage_error(tmp_path: Path) -> None:
    _write_log(tmp_path, SMALL_LOG, workload_dir="ogbg_tf")
    with pytest.raises(UsageError, match="jax|pytorch"):
        import_algoperf(tmp_path / "logs", ResultsStore(tmp_path / "results"), TARGETS)


def test_targets_file_is_found_in_log_dir_or_parent(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    with pytest.raises(UsageError, match="--targets"):
        find_targets_file(logs)
    shutil.copy(TARGETS, tmp_path / "workload_targets_v06.json")
    assert find_targets_file(logs) == tmp_path / "workload_targets_v06.json"
    shutil.copy(TARGETS, logs / "workload_targets_a.json")
    shutil.copy(TARGETS, logs / "workload_targets_b.json")
    with pytest.raises(UsageError, match=f"{logs}.*--targets"):
        find_targets_file(logs)


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("fastmri_tanh", "fastmri"),
        ("fastmri", "fastmri"),
        ("imagenet_resnet_silu", "imagenet_resnet"),
        ("imagenet_vit_glu", "imagenet_vit"),
        ("librispeech_conformer_gelu", "librispeech_conformer"),
        ("criteo1tb_embed_init", "criteo1tb"),
    ],
)
def test_base_workload_is_longest_prefix(name: str, base: str) -> None:
    assert base_workload(name, load_targets(TARGETS)) == base


def test_base_workload_unknown_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cifar10x"):
        base_workload("cifar10x", load_targets(TARGETS))


@pytest.mark.parametrize(
    ("metric", "lower"),
    [
        ("validation/loss", True),
        ("validation/wer", True),
        ("ppl", True),
        ("validation/error_rate", True),
        ("validation/ctc_loss", True),
        ("validation/accuracy", False),
        ("validation/ssim", False),
        ("validation/mean_average_precision", False),
        ("validation/bleu", False),
    ],
)
def test_metric_direction(metric: str, lower: bool) -> None:
    assert is_minimized(metric) is lower


def test_unknown_metric_direction_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="validation/f1"):
        is_minimized("validation/f1")


# -- held-out variants, from real logs laid out as AlgoPerf v0.5 variants ---------------------

BASE_SSIM, TANH_SSIM = 0.723653, 0.71784  # fastmri and fastmri_tanh targets in TARGETS
FRAMEWORK = {"baseline": "jax", "shampoo": "pytorch"}


def _variant_logs(root: Path, ssim_shift: dict[str, float], time_factor: dict[str, float]) -> Path:
    """Real fastmri and ogbg logs of both submissions, plus a fastmri_tanh variant per submission:
    its CSVs are fastmri's with ssim moved by (tanh target - base target) + ssim_shift[s] and the
    `score` (time) column times time_factor[s]. Shift 0: it crosses its target on the same row."""
    logs = root / "logs"
    for submission, framework in FRAMEWORK.items():
        for study in range(3):
            for workload in ("fastmri", "ogbg"):
                folder = f"{submission}/study_{study}/{workload}_{framework}"
                shutil.copytree(LOGS / folder, logs / folder)
            source = LOGS / f"{submission}/study_{study}/fastmri_{framework}"
            for csv_path in source.glob("trial_*/eval_measurements.csv"):
                frame = pd.read_csv(csv_path)
                frame["validation/ssim"] += TANH_SSIM - BASE_SSIM + ssim_shift[submission]
                frame["score"] *= time_factor[submission]
                out = logs / f"{submission}/study_{study}/fastmri_tanh_{framework}"
                out = out / csv_path.parent.name / csv_path.name
                out.parent.mkdir(parents=True)
                frame.to_csv(out, index=False)
    return logs


@pytest.mark.parametrize(
    ("ssim_shift", "time_factor", "loses_fastmri"),
    [
        # shampoo's held-out runs take 6x: 6 x 640.8 s > 4 x baseline's 873.3 s -> out of 4x
        ({"baseline": 0.0, "shampoo": 0.0}, {"baseline": 1.0, "shampoo": 6.0}, "shampoo"),
        # baseline never reaches the held-out target
        ({"baseline": -0.5, "shampoo": 0.0}, {"baseline": 1.0, "shampoo": 1.0}, "baseline"),
    ],
)
def test_held_out_rule_on_real_logs(
    tmp_path: Path, ssim_shift: dict, time_factor: dict, loses_fastmri: str
) -> None:
    store = ResultsStore(tmp_path / "results")
    logs = _variant_logs(tmp_path, ssim_shift, time_factor)
    import_algoperf(logs, store, TARGETS, held_out_path=HELD_OUT_V05)  # lists fastmri_tanh
    trials = store.read_trials()
    origin = trials["ruleset_json"].map(json.loads)
    held = origin.map(lambda o: o.get("held_out", False))
    assert trials["trial_id"].is_unique and set(trials["workload"]) == {"fastmri", "ogbg"}
    assert set(origin[held].map(lambda o: o["variant"])) == {"fastmri_tanh"}
    assert (trials.loc[held, "target_value"] == TANH_SSIM).all()
    # without the rule the variant rows change nothing: W is the two base workloads
    base_times = workload_times(trials[~held])
    pd.testing.assert_frame_equal(workload_times(trials), base_times)
    assert benchmark_scores(trials).equals(benchmark_scores(trials[~held]))
    # with it, exactly one submission loses fastmri
    expected = base_times.copy()
    expected.loc[loses_fastmri, "fastmri"] = np.inf
    pd.testing.assert_frame_equal(workload_times(trials, held_out_rule=True), expected)
    scores = benchmark_scores(trials, held_out_rule=True)
    assert scores.to_dict() == integrate_profiles(performance_profiles(expected)).to_dict()
    assert scores[loses_fastmri] < benchmark_scores(trials)[loses_fastmri]


def test_score_command_applies_the_held_out_rule_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweeps.cli import main

    logs = _variant_logs(
        tmp_path, {"baseline": 0.0, "shampoo": 0.0}, {"baseline": 1.0, "shampoo": 6.0}
    )
    results = str(tmp_path / "results")
    assert (
        main(
            [
                "import-algoperf",
                str(logs),
                "--results",
                results,
                "--targets",
                str(TARGETS),
                "--held-out",
                str(HELD_OUT_V05),
            ]
        )
        == 0
    )
    capsys.readouterr()

    def scores(*flags: str) -> dict[str, float]:
        assert main(["score", "--results", results, *flags]) == 0
        lines = capsys.readouterr().out.split("\n")
        return {name: float(value) for name, value in (line.split("\t") for line in lines if line)}

    plain, ruled = scores(), scores("--held-out-rule")
    trials = ResultsStore(results).read_trials()
    assert plain == pytest.approx(benchmark_scores(trials).to_dict(), abs=1e-4)
    assert ruled == pytest.approx(benchmark_scores(trials, held_out_rule=True).to_dict(), abs=1e-4)
    assert (
        ruled["shampoo"] < plain["shampoo"]
    )  # it loses fastmri; baseline, now fastest there, gains
