"""The synthetic store the report tests build from: it reads back,
and it holds the truths it claims."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.results import ResultsStore
from tests.reports import synthetic as syn


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ResultsStore:
    return syn.write_synthetic_store(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def trials(store: ResultsStore) -> pd.DataFrame:
    frame = store.read_trials()
    frame["track"] = frame["ruleset_json"].map(lambda text: json.loads(text).get("track", ""))
    frame["lr"] = frame["hparams_json"].map(lambda text: json.loads(text)["lr"])
    return frame


def test_every_part_reads_back(store: ResultsStore, trials: pd.DataFrame) -> None:
    fixed_model = trials[trials["scale"] == "smoke"]
    assert fixed_model.groupby(["workload", "submission"]).size().tolist() == [18] * 8
    resource = trials[trials["track"] == "fixed-resource"]
    assert set(resource["scale"]) == set(syn.LADDER) and len(resource) == 4 * 2 * 6
    scaling = trials[(trials["track"] == "") & (trials["scale"] != "smoke")]
    assert scaling.groupby(["submission", "scale"]).size().tolist() == [8] * 16
    assert set(trials["hardware_class"]) == {syn.HARDWARE_CLASS}
    assert trials["git_commit"].str.len().eq(40).all()
    evals = store.read_evals()
    assert set(evals["trial_id"]) <= set(trials["trial_id"])
    assert (evals["step"] % syn.EVAL_EVERY_STEPS == 0).all()


def test_written_the_same_every_time(tmp_path: Path, trials: pd.DataFrame) -> None:
    again = syn.write_synthetic_store(tmp_path).read_trials()
    columns = ["trial_id", "status", "final_metric", "hparams_json"]
    assert again[columns].equals(trials[columns])


def test_statuses(trials: pd.DataFrame) -> None:
    counts = trials["status"].value_counts()
    assert counts["diverged"] == len(syn.DIVERGED) and counts["failed"] == 1
    assert counts["target_reached"] > 100 and counts["budget_exhausted"] > 20
    diverged = trials[trials["status"] == "diverged"]
    assert not np.isfinite(diverged["final_metric"]).any()
    for _, row in diverged.iterrows():  # at the lane's largest lr
        lane = trials[
            (trials["submission"] == row["submission"])
            & (trials["workload"] == row["workload"])
            & (trials["scale"] == "smoke")
        ]
        assert row["lr"] == lane["lr"].max()


def test_memory_and_fixed_resource_caps(trials: pd.DataFrame) -> None:
    assert (trials["params_bytes"] == trials["grads_bytes"]).all()
    ratio = trials["optimizer_state_bytes"] / trials["params_bytes"]
    assert ratio.groupby(trials["submission"]).unique().map(list).to_dict() == {
        name: [float(k)] for name, k in syn.STATE_PER_PARAM.items()
    }
    parts = ["params_bytes", "grads_bytes", "optimizer_state_bytes", "activations_bytes"]
    assert (trials[parts].sum(axis=1) == trials["peak_bytes"]).all()
    resource = trials[trials["track"] == "fixed-resource"]
    over = resource[resource["status"] == "over_budget"]
    assert set(over["submission"]) == {"adamw"} and set(over["scale"]) == {"smoke-l"}
    fits = resource[resource["status"] != "over_budget"]
    largest = fits.groupby("submission")["num_params"].max()
    assert {
        s: syn.LADDER[syn.LADDER_NUM_PARAMS.index(n)] for s, n in largest.items()
    } == syn.LARGEST_FIT
    best = fits.groupby(["submission", "num_params"])["best_metric"].min()
    for name in syn.SUBMISSIONS:  # within the budget, a bigger model that fits gets lower
        assert best[name].is_monotonic_decreasing


def test_lr_fit_recovers_the_exponent(trials: pd.DataFrame) -> None:
    scaling = trials[(trials["track"] == "") & (trials["scale"] != "smoke")]
    best = scaling.loc[scaling.groupby(["submission", "scale", "study"])["final_metric"].idxmin()]
    for _, group in best.groupby("submission"):
        slope = np.polyfit(np.log(group["num_params"]), np.log(group["lr"]), 1)[0]
        assert slope == pytest.approx(syn.BEST_LR_EXPONENT, abs=0.05)


def test_muon_faster_in_steps_and_more_so_at_size(trials: pd.DataFrame) -> None:
    scaling = trials[(trials["track"] == "") & (trials["scale"] != "smoke")]
    steps = scaling.groupby(["scale", "submission"])["steps_to_target"].min().unstack()
    speedup = (steps["adamw"] / steps["muon"])[list(syn.LADDER)]
    assert (speedup > 1.2).all() and speedup.iloc[-1] > speedup.iloc[0]
    smoke = trials[(trials["scale"] == "smoke") & (trials["workload"] == "nanogpt")]
    fastest = smoke.groupby("submission")["steps_to_target"].min()
    assert fastest["muon"] < fastest["adamw"] < fastest["sgd-nesterov"]
