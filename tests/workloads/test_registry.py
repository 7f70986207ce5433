"""The workload registry: names, scales, and clear errors for unknown ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import workloads
from harness.contract import Hyperparameters, Role
from harness.errors import ContractError, UsageError
from harness.runner import run_trial
from harness.submission import load_submission
from harness.trial import TrialSpec, TrialStatus
from harness.workload import Workload
from workloads import get_workload

BENCHMARK = ["cifar10-94", "diffusion", "nanogpt", "resnet18-cifar10", "vit-cifar10"]


def test_registry_declares_every_workload_at_both_scales(tmp_path: Path) -> None:
    assert sorted(workloads.WORKLOADS) == sorted([*BENCHMARK, "digits"])
    adamw = load_submission("adamw").search_space
    for name, cls in workloads.WORKLOADS.items():
        assert cls.name == name and cls.version >= 1
        bases = {s: c for s, c in cls.configs.items() if cls.base_scale_of(s) == s}  # no rungs
        assert set(bases) == ({"smoke"} if name == "digits" else {"smoke", "full"})
        for scale, config in bases.items():
            workload = workloads.get_workload(name, scale, tmp_path)
            assert isinstance(workload, Workload) and workload.scale == scale
            assert config.budget.step_hint == round(0.8 * config.budget.max_steps)
            assert config.precision == ("fp32" if scale == "smoke" else "bf16-autocast")
            assert workload.precision(torch.device("cpu")) == "fp32"
            steps = config.budget.max_steps
            evals = sum(config.eval_due(done, steps) for done in range(1, steps + 1))
            assert 6 <= evals <= 100, f"{name}@{scale}: {evals} evals per trial"
            adamw.validate_point(Hyperparameters(cls.reference_hparams[scale]))
            if scale == "smoke":
                assert config.budget.max_time_s <= 30 and not config.target.provisional
            else:
                assert config.target.provisional and config.target.seeds >= 3
    assert list(tmp_path.iterdir()) == []  # constructing builds nothing; setup does


def test_eval_cadence_densens_late_in_the_budget() -> None:
    config = workloads.NanoGPT.configs["full"]
    due = [s for s in range(1, 6001) if config.eval_due(s, 6000)]
    assert due[:2] == [125, 250] and 5400 in due and 5425 in due and 5410 not in due
    assert len(due) == 5375 // 125 + (6000 - 5400) // 25 + 1


def test_the_seed_gate_is_the_speedrun_s() -> None:
    target = workloads.NanoGPT.configs["full"].target
    assert target.gate_passes([3.275] * 5)  # (3.28 - 3.275) * sqrt(5) = 0.011 >= 0.004
    assert not target.gate_passes([3.279] * 5)  # 0.0022 < 0.004
    assert not target.gate_passes([3.20] * 4)  # fewer seeds than the gate's n
    assert not target.gate_passes([3.2, 3.2, 3.2, 3.2, float("nan")])


def test_unknown_name_and_scale(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown workload 'x' \(known: cifar10-94, diffusion"):
        workloads.get_workload("x", "smoke", tmp_path)
    with pytest.raises(UsageError, match=r"workload 'digits' has no scale 'huge' \(known: smoke\)"):
        workloads.get_workload("digits", "huge", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(workloads.WORKLOADS))
def test_smoke_trial_reaches_the_target_with_the_reference_adamw(name: str, data_dir: Path) -> None:
    """The calibration's promise, checked on seed 0: the target by the step hint. (Its wall time,
    under 30 s on 2 cores, is the calibration's measured figure in workloads/CALIBRATION.md, not a
    test's: a test's clock measures whatever else the machine runs.)"""
    config = workloads.WORKLOADS[name].configs["smoke"]
    point = workloads.WORKLOADS[name].reference_hparams["smoke"]
    spec = TrialSpec(
        workload=name,
        scale="smoke",
        submission="adamw",
        hparams_json=TrialSpec.canonical_hparams(point),
        seed=0,
        data_dir=str(data_dir),
    )
    outcome = run_trial(spec, get_workload)
    assert outcome.status is TrialStatus.TARGET_REACHED, outcome.row["error"]
    assert outcome.row["steps_to_target"] <= config.budget.step_hint
    assert outcome.row["precision"] == "fp32"


@pytest.mark.parametrize("name", sorted(workloads.WORKLOADS))
def test_roles_cover_every_parameter_once(name: str, tmp_path: Path) -> None:
    """The contract every workload keeps: one role per trainable parameter, no stray roles."""
    workload = workloads.get_workload(name, "smoke", tmp_path)
    workload.setup(torch.device("cpu"), seed=0)
    model = workload.build_model(seed=0)
    groups = workload.param_groups(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(groups) == len(trainable)
    assert all(a is b for a, b in zip(groups.params, trainable, strict=True))
    roles = workload.param_roles(model)
    roles["not.a.parameter"] = Role.SCALAR
    workload.param_roles = lambda _model: roles  # type: ignore[method-assign]
    with pytest.raises(ContractError, match="roles given for no parameter"):
        workload.param_groups(model)
    first_trainable = next(n for n, p in model.named_parameters() if p.requires_grad)
    del roles["not.a.parameter"], roles[first_trainable]
    with pytest.raises(ContractError, match="parameters without a role"):
        workload.param_groups(model)
