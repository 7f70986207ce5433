"""The workload registry: names, scales, and clear errors for unknown ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import workloads
from harness.contract import Role
from harness.errors import ContractError, UsageError
from harness.workload import Workload


def test_registry_lists_both_workloads(tmp_path: Path) -> None:
    assert sorted(workloads.WORKLOADS) == ["digits", "nanogpt"]
    for name, cls in workloads.WORKLOADS.items():
        assert cls.name == name and cls.version >= 1
        workload = workloads.get_workload(name, "smoke", tmp_path)
        assert isinstance(workload, Workload) and workload.scale == "smoke"
        config = workload.config
        assert config.budget.step_hint == round(0.8 * config.budget.max_steps)
        assert config.precision == "fp32"
        assert 10 <= config.budget.max_steps // config.eval_every_steps <= 25
    assert list(tmp_path.iterdir()) == []  # constructing builds nothing; setup does


def test_unknown_name_and_scale(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown workload 'x' \(known: digits, nanogpt\)"):
        workloads.get_workload("x", "smoke", tmp_path)
    with pytest.raises(UsageError, match=r"workload 'digits' has no scale 'huge' \(known: smoke\)"):
        workloads.get_workload("digits", "huge", tmp_path)


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
    del roles["not.a.parameter"], roles[next(iter(roles))]
    with pytest.raises(ContractError, match="parameters without a role"):
        workload.param_groups(model)
