"""The trial runner: statuses, isolation, the clock's fields, memory accounting, resumability."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.isolation import run_isolated
from harness.recorder import TrialOutcome
from harness.results import ResultsStore
from harness.runner import run_trial
from harness.trial import TrialSpec, TrialStatus
from workloads import Digits, get_workload

ADAMW_POINT = {"lr": 3e-3, "weight_decay": 0.05, "beta1": 0.9, "warmup_frac": 0.05}

RAISING = """
import torch

class Exploding(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("boom in step")

def optimizer(params, hp, info):
    return Exploding(params.params, lr=hp["lr"])
"""

NAN = """
import torch

class Poisoning(torch.optim.SGD):
    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.fill_(float("nan"))

def optimizer(params, hp, info):
    return Poisoning(params.params, lr=hp["lr"])
"""


def _submission(root: Path, name: str, source: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "submission.py").write_text(source)
    (folder / "search_space.json").write_text(json.dumps({"lr": {"min": 0.01, "max": 0.1}}))
    return folder


def _spec(submission: str | Path, data_dir: Path, hp: dict, **kwargs) -> TrialSpec:
    return TrialSpec(
        workload="digits",
        scale="smoke",
        submission=str(submission),
        hparams_json=TrialSpec.canonical_hparams(hp),
        seed=1,
        data_dir=str(data_dir),
        **kwargs,
    )


def test_failures_are_recorded_and_do_not_stop_other_trials(tmp_path: Path, data_dir: Path) -> None:
    raising = _submission(tmp_path, "raising", RAISING)
    poisoning = _submission(tmp_path, "poisoning", NAN)
    specs = [
        _spec(raising, data_dir, {"lr": 0.05}),
        _spec(poisoning, data_dir, {"lr": 0.05}),
        _spec("adamw", data_dir, {**ADAMW_POINT, "lr": 1e-3}, max_steps=30),  # runs out of budget
        _spec("adamw", data_dir, ADAMW_POINT),  # reaches the target
    ]
    results = str(tmp_path / "results")
    summaries = run_isolated(specs, results, get_workload, max_parallel=2)
    assert len(summaries) == 4
    trials = ResultsStore(results).read_trials().set_index("submission")
    assert trials.loc["raising", "status"] == TrialStatus.FAILED
    assert "boom in step" in trials.loc["raising", "error"]
    assert trials.loc["poisoning", "status"] == TrialStatus.DIVERGED
    adamw = ResultsStore(results).read_trials().query("submission == 'adamw'")
    by_steps = adamw.set_index("steps")
    assert by_steps.loc[30, "status"] == TrialStatus.BUDGET_EXHAUSTED
    assert math.isnan(by_steps.loc[30, "time_to_target_s"])
    reached = adamw[adamw["status"] == TrialStatus.TARGET_REACHED].iloc[0]
    assert reached["time_to_target_s"] == pytest.approx(reached["train_time_s"])
    every = Digits.configs["smoke"].eval_every_steps
    assert reached["steps_to_target"] % every == 0 or reached["steps_to_target"] == reached["steps"]


def test_trial_record_fields(data_dir: Path, fresh_process: Callable[..., TrialOutcome]) -> None:
    outcome = fresh_process(_spec("adamw", data_dir, ADAMW_POINT))  # its own peak, as in sweeps
    row = outcome.row
    assert row["status"] == TrialStatus.TARGET_REACHED, row["error"]
    assert row["tokens_to_target"] == row["steps_to_target"] * 64
    assert 0 < row["train_time_s"] < row["wall_time_s"]
    assert row["eval_time_s"] > 0 and row["compile_time_s"] > 0
    assert row["throughput_per_s"] > 0 and row["throughput_unit"] == "examples"
    # AdamW keeps two fp32 moments per parameter plus a 4-byte step tensor per parameter tensor.
    assert row["grads_bytes"] == row["params_bytes"]
    assert row["optimizer_state_bytes"] >= 2 * row["params_bytes"]
    assert row["optimizer_state_bytes"] - 2 * row["params_bytes"] < 4096
    assert row["peak_bytes"] > 0 and row["peak_source"] in ("vmhwm", "ru_maxrss-unreset")
    static = row["params_bytes"] + row["grads_bytes"] + row["optimizer_state_bytes"]
    assert row["activations_bytes"] == max(0, row["peak_bytes"] - static)
    evals = {(e["eval_index"], e["metric"]): e for e in outcome.evals}
    first = evals[(0, "test_accuracy")]
    every = Digits.configs["smoke"].eval_every_steps
    assert first["step"] == every and first["tokens"] == every * 64
    assert all(e["trial_id"] == row["trial_id"] for e in outcome.evals)
    assert row["git_commit"] is not None and row["hostname"]


def test_point_outside_search_space_fails_the_trial(data_dir: Path) -> None:
    outcome = run_trial(_spec("adamw", data_dir, {**ADAMW_POINT, "lr": 5.0}), get_workload)
    assert outcome.status == TrialStatus.FAILED
    assert "lr=5.0 is outside" in outcome.row["error"]


def test_a_contract_error_inside_a_trial_is_its_failed_row(tmp_path: Path, data_dir: Path) -> None:
    # `optbench run` refuses this factory before the trial; a sweep's trial records it instead
    returns_none = "def optimizer(params, hp, info):\n    return None\n"
    folder = _submission(tmp_path, "returns-none", returns_none)
    outcome = run_trial(_spec(folder, data_dir, {"lr": 0.05}), get_workload)
    assert outcome.status == TrialStatus.FAILED
    error = outcome.row["error"]
    assert "ContractError" in error and "optimizer() returned None;" in error


def test_same_spec_gives_same_steps_and_metrics(data_dir: Path) -> None:
    spec = _spec("adamw", data_dir, ADAMW_POINT, max_steps=40)
    first, second = run_trial(spec, get_workload), run_trial(spec, get_workload)
    assert first.row["trial_id"] == second.row["trial_id"]
    assert first.row["final_metric"] == second.row["final_metric"]


FULL_CONTROL = '''
import torch

class Submission:
    """Plain SGD by hand; counts prepare_for_eval calls in a tensor the test can read."""

    def __init__(self, params, hp, info):
        self.params = list(params)
        self.lr = hp["lr"]
        self.prepared = 0

    def update(self, batch, step, ctx):
        loss = ctx.forward_backward(batch)
        scale = self.lr * ctx.lr_multiplier(step)
        with torch.no_grad():
            for p in self.params:
                p.add_(p.grad, alpha=-scale)
        return loss

    def prepare_for_eval(self):
        self.prepared += 1
        if self.prepared > 3:
            raise RuntimeError(f"prepare_for_eval called {self.prepared} times")
'''


def test_full_control_submission_runs_and_prepares_for_eval(tmp_path: Path, data_dir: Path) -> None:
    folder = _submission(tmp_path, "by-hand", FULL_CONTROL)
    steps = 3 * Digits.configs["smoke"].eval_every_steps
    outcome = run_trial(
        _spec(folder, data_dir, {"lr": 0.1}, max_steps=steps, stop_at_target=False), get_workload
    )
    assert outcome.status != TrialStatus.FAILED, outcome.row["error"]
    assert outcome.row["steps"] == steps
    losses = [e["value"] for e in outcome.evals if e["metric"] == "train_loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    # a fourth prepare_for_eval would have raised: one call per eval, none elsewhere
    assert outcome.row["compile_time_s"] == 0.0  # no state_dict: no warm-up to undo


def test_incomplete_algoperf_module_fails_the_trial_clearly(tmp_path: Path, data_dir: Path) -> None:
    folder = _submission(tmp_path, "algoperf-style", "def update_params(*args):\n    pass\n")
    outcome = run_trial(_spec(folder, data_dir, {"lr": 0.05}), get_workload)
    assert outcome.status == TrialStatus.FAILED
    assert "AlgoPerf-style submissions (level 3)" in outcome.row["error"]
    assert "missing: get_batch_size, init_optimizer_state, data_selection" in outcome.row["error"]


def test_time_budget_stops_the_trial(data_dir: Path) -> None:
    outcome = run_trial(_spec("adamw", data_dir, ADAMW_POINT, max_time_s=0.05), get_workload)
    assert outcome.status == TrialStatus.BUDGET_EXHAUSTED
    assert 0 < outcome.row["steps"] < Digits.configs["smoke"].budget.max_steps
    # stopped at the first step past the budget, evaluated there, and no later
    assert 0.05 <= outcome.row["train_time_s"] < 0.5
    assert max(e["step"] for e in outcome.evals) == outcome.row["steps"]
