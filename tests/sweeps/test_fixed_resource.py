"""The fixed-resource track: one memory cap and time budget for every trial, and the model size
(rung x batch of the workload's ladder) drawn as one more dimension of the search."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.results import ResultsStore
from harness.search_space import Choice, Range, SearchSpace
from harness.trial import TrialStatus
from sweeps.cli import main
from sweeps.commands import parse_bytes
from sweeps.points import quasi_random_points
from sweeps.rulesets import (
    RUNG_KEY,
    ExternalRuleset,
    ResourceCaps,
    WorkloadAtScale,
    make_ruleset,
)
from workloads import NanoGPT

SPACE = SearchSpace(dims=(Range("lr", 1e-4, 1e-2, True), Choice("beta1", (0.9, 0.95))))
NANOGPT = [WorkloadAtScale("nanogpt", "smoke")]
CAPS = ResourceCaps(memory_cap_bytes=512 * 2**20, time_budget_s=20.0)
LADDER = list(NanoGPT.ladder_scales("smoke", with_batches=True))


def test_the_fixed_model_track_records_what_it_recorded_before() -> None:
    """No new fields: trial ids of existing sweeps stay."""
    ruleset = ExternalRuleset(num_trials=2, num_studies=3, seed=0)
    assert ruleset.to_json() == (
        '{"name": "external", "num_studies": 3, "num_trials": 2, '
        '"search": "quasi-random", "seed": 0}'
    )
    (lane, *_) = ruleset.lanes("subs/a", "a", SPACE, NANOGPT, "/data")
    assert lane.space == SPACE and lane.ladder == () and lane.trial(0).scale == "smoke"


def test_the_rung_is_one_more_dimension_of_the_seeded_search() -> None:
    ruleset = ExternalRuleset(num_trials=24, num_studies=2, seed=1, caps=CAPS)
    lanes = ruleset.lanes("subs/a", "a", SPACE, NANOGPT, "/data")
    lane = lanes[0]
    assert lane.space.dims[-1] == Choice(RUNG_KEY, tuple(LADDER)) and lane.ladder == tuple(LADDER)
    points = quasi_random_points(lane.space, lane.points_seed, 24)
    specs = [lane.trial(i) for i in range(24)]
    for point, spec in zip(points, specs, strict=True):
        assert spec.scale == point[RUNG_KEY]  # the drawn rung is the trial's scale...
        assert spec.hparams == {k: v for k, v in point.items() if k != RUNG_KEY}  # ...not an hparam
        assert spec.memory_cap_bytes == CAPS.memory_cap_bytes
        assert spec.max_time_s == CAPS.time_budget_s
    assert len({s.scale for s in specs}) >= 8  # the sequence covers the ladder
    assert [s.scale for s in specs] == [lane.trial(i).scale for i in range(24)]  # reproducible
    assert [s.scale for s in specs] != [lanes[1].trial(i).scale for i in range(24)]  # per study
    recorded = json.loads(specs[0].ruleset_json)
    assert recorded == {
        "name": "external",
        "num_studies": 2,
        "num_trials": 24,
        "seed": 1,
        "search": "quasi-random",
        "track": "fixed-resource",
        "memory_cap_bytes": 512 * 2**20,
        "time_budget_s": 20.0,
        "ladder": LADDER,
    }


def test_refusals() -> None:
    caps_ruleset = ExternalRuleset(caps=CAPS)
    with pytest.raises(UsageError, match=r"'digits' has no ladder at scale 'smoke'"):
        caps_ruleset.lanes("subs/a", "a", SPACE, [WorkloadAtScale("digits", "smoke")], "/data")
    listed = SearchSpace(dims=(), fixed_points=({"lr": 0.1},), source="list.json")
    with pytest.raises(
        UsageError, match=r"list.json: the fixed-resource track adds the model size"
    ):
        caps_ruleset.lanes("subs/a", "a", listed, NANOGPT, "/data")
    with pytest.raises(UsageError, match=r"--ruleset self runs no search"):
        make_ruleset(
            "self",
            trials=1,
            studies=1,
            seed=0,
            search="quasi-random",
            budget_s=None,
            budget_factor=3.0,
            caps=CAPS,
        )


@pytest.mark.parametrize(
    "text, expected",
    [("512MiB", 512 * 2**20), ("1.5GiB", 3 * 2**29), ("64kib", 65536), ("4096", 4096)],
)
def test_sizes_take_binary_suffixes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["12MB", "0", "-1", "lots", "1e9"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="memory cap|not a size"):
        parse_bytes(text)


def test_bad_track_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = str(tmp_path / "results")
    with pytest.raises(SystemExit) as exited:
        main(["sweep", "adamw", "--track", "fixed-resource", "--memory-cap", "12MB"])
    assert (
        exited.value.code == 2 and "--memory-cap: '12MB' is not a size" in capsys.readouterr().err
    )
    assert (
        main(
            [
                "sweep",
                "adamw",
                "--track",
                "fixed-resource",
                "--memory-cap",
                "1GiB",
                "--results",
                results,
            ]
        )
        == 2
    )
    assert "needs --memory-cap SIZE and --time-budget-s" in capsys.readouterr().err
    assert main(["sweep", "adamw", "--time-budget-s", "5", "--results", results]) == 2
    assert "--time-budget-s: only for --track fixed-resource" in capsys.readouterr().err
    assert (
        main(
            [
                "sweep",
                "adamw",
                "--workloads",
                "digits",
                "--track",
                "fixed-resource",
                "--memory-cap",
                "1GiB",
                "--time-budget-s",
                "5",
                "--results",
                results,
            ]
        )
        == 2
    )
    assert "'digits' has no ladder" in capsys.readouterr().err
    assert not Path(results).exists()  # refused before anything was written


@pytest.mark.slow
def test_a_fixed_resource_sweep_under_a_cap_below_every_rung(
    tmp_path: Path, data_dir: Path
) -> None:
    """Real Ray: 2 submissions x 2 trials; a 1 KiB cap, below any rung's peak: all over budget."""
    results = tmp_path / "results"
    argv = (
        "sweep adamw muon --workloads nanogpt --track fixed-resource --memory-cap 1KiB "
        "--time-budget-s 20 --trials 2 --studies 1 --max-steps 6 --cpus 2 --quiet"
    ).split()
    argv += ["--results", str(results), "--data-dir", str(data_dir)]
    assert main(argv) == 0
    trials = ResultsStore(results).read_trials()
    assert sorted(trials["submission"]) == ["adamw", "adamw", "muon", "muon"]
    assert set(trials["scale"]) <= set(LADDER)
    assert (trials["status"] == TrialStatus.OVER_BUDGET).all(), trials["error"].tolist()
    assert (trials["memory_cap_bytes"] == 1024).all() and (trials["peak_bytes"] > 1024).all()
    assert (trials["steps"] == 6).all() and trials["best_metric"].notna().all()  # metrics kept
    for _, row in trials.iterrows():
        recorded = json.loads(row["ruleset_json"])
        assert (recorded["track"], recorded["memory_cap_bytes"]) == ("fixed-resource", 1024)
        assert recorded["time_budget_s"] == 20.0 and recorded["ladder"] == LADDER
        assert RUNG_KEY not in json.loads(row["hparams_json"])
        assert row["batch_size"] == NanoGPT.configs[row["scale"]].batch_size
    assert main(argv) == 0  # a re-run finds every trial stored and runs none
    assert len(ResultsStore(results).read_trials()) == 4
