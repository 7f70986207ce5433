"""The submission contract (ParamGroups, Hyperparameters, loading), the schedule and the clock."""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from harness.clock import Clock
from harness.contract import NO_DECAY_ROLES, Hyperparameters, ParamGroups, Role, WorkloadInfo
from harness.errors import ContractError
from harness.schedules import warmup_cosine
from harness.submission import load_submission

# -- ParamGroups ---------------------------------------------------------------------------------


def _param(*shape: int) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(shape))


def _groups() -> ParamGroups:
    roles = (
        Role.EMBEDDING,
        Role.MATRIX,
        Role.BIAS,
        Role.NORM,
        Role.CONV,
        Role.SCALAR,
        Role.HEAD,
        Role.MATRIX,
    )
    shapes = [(10, 4), (4, 4), (4,), (4,), (2, 1, 3, 3), (), (4, 10), (4, 4)]
    return ParamGroups(params=tuple(_param(*s) for s in shapes), roles=roles)


def _ids(params: list[torch.nn.Parameter]) -> list[int]:
    return [id(p) for p in params]


def test_no_decay_roles_are_norm_bias_scalar() -> None:
    assert NO_DECAY_ROLES == {Role.NORM, Role.BIAS, Role.SCALAR}


def test_param_groups_rejects_mismatched_lengths() -> None:
    a, b = _param(2), _param(2)
    with pytest.raises(ValueError, match="one role per parameter"):
        ParamGroups(params=(a, b), roles=(Role.BIAS,))
    with pytest.raises(ValueError, match="one role per parameter"):
        ParamGroups(params=(a,), roles=(Role.BIAS, Role.NORM))


def test_param_groups_rejects_a_parameter_listed_twice() -> None:
    a = _param(2)
    with pytest.raises(ValueError, match="twice"):
        ParamGroups(params=(a, _param(2), a), roles=(Role.BIAS, Role.BIAS, Role.NORM))
    # equal values are not the same parameter
    ParamGroups(params=(_param(2), _param(2)), roles=(Role.BIAS, Role.BIAS))


def test_param_groups_iterates_in_order() -> None:
    groups = _groups()
    assert len(groups) == 8
    assert _ids(list(groups)) == _ids(list(groups.params))


def test_with_roles_and_without_roles_partition_in_order() -> None:
    groups = _groups()
    p = groups.params
    assert _ids(groups.with_roles(Role.MATRIX)) == _ids([p[1], p[7]])
    assert _ids(groups.with_roles("matrix", Role.HEAD)) == _ids([p[1], p[6], p[7]])
    assert _ids(groups.without_roles(Role.MATRIX, "bias")) == _ids([p[0], p[3], p[4], p[5], p[6]])
    assert groups.with_roles() == []
    assert _ids(groups.without_roles()) == _ids(list(p))
    for roles in ([Role.MATRIX], [Role.NORM, Role.BIAS], list(Role)):
        chosen = _ids(groups.with_roles(*roles)) + _ids(groups.without_roles(*roles))
        assert sorted(chosen) == sorted(_ids(list(p)))


def test_with_roles_rejects_an_unknown_role_name() -> None:
    with pytest.raises(ValueError):
        _groups().with_roles("weights")


def test_decay_mask_excludes_norm_bias_scalar() -> None:
    assert _groups().decay_mask() == [True, True, False, False, True, False, True, True]


def test_torch_groups_cover_every_param_once_with_zero_decay_on_norm_bias_scalar() -> None:
    groups = _groups()
    torch_groups = groups.torch_groups(weight_decay=0.1)
    assert len(torch_groups) == 2
    covered = [id(q) for g in torch_groups for q in g["params"]]
    assert sorted(covered) == sorted(_ids(list(groups.params)))
    assert len(covered) == len(set(covered)) == 8
    decay_of = {id(q): g["weight_decay"] for g in torch_groups for q in g["params"]}
    for param, role in zip(groups.params, groups.roles, strict=True):
        expected = 0.0 if role in (Role.NORM, Role.BIAS, Role.SCALAR) else 0.1
        assert decay_of[id(param)] == expected, role
    assert [g["weight_decay"] for g in torch_groups] == [0.1, 0.0]
    assert all(set(g) == {"params", "weight_decay"} for g in torch_groups)


@pytest.mark.parametrize(
    "roles, expected",
    [
        ((Role.MATRIX, Role.HEAD), [0.1]),
        ((Role.NORM, Role.BIAS), [0.0]),
    ],
    ids=["all_decayed", "none_decayed"],
)
def test_torch_groups_drop_empty_groups(roles: tuple[Role, ...], expected: list[float]) -> None:
    groups = ParamGroups(params=tuple(_param(3) for _ in roles), roles=roles)
    torch_groups = groups.torch_groups(0.1)
    assert [g["weight_decay"] for g in torch_groups] == expected
    assert len(torch_groups[0]["params"]) == len(roles)


# -- Hyperparameters -----------------------------------------------------------------------------


def test_hyperparameters_item_attribute_and_get_access() -> None:
    hp = Hyperparameters({"lr": 1e-3, "beta1": 0.9})
    assert hp["lr"] == hp.lr == 1e-3
    assert hp.beta1 == 0.9
    assert hp.get("eps", 1e-8) == 1e-8
    assert hp.get("lr", 5.0) == 1e-3
    assert "lr" in hp and "eps" not in hp
    assert len(hp) == 2
    assert list(hp) == ["lr", "beta1"]
    assert dict(hp) == {"lr": 1e-3, "beta1": 0.9}
    assert "lr" in repr(hp)


def test_hyperparameters_missing_attribute_and_item() -> None:
    hp = Hyperparameters({"lr": 1e-3})
    with pytest.raises(AttributeError, match="'momentum'"):
        _ = hp.momentum
    assert not hasattr(hp, "momentum")
    with pytest.raises(KeyError):
        _ = hp["momentum"]


def test_hyperparameters_are_read_only_and_copied_from_the_input() -> None:
    values = {"lr": 1e-3}
    hp = Hyperparameters(values)
    with pytest.raises(AttributeError, match="read-only"):
        hp.lr = 1.0
    with pytest.raises(AttributeError, match="read-only"):
        hp.momentum = 0.9
    with pytest.raises(TypeError):
        hp["lr"] = 1.0  # type: ignore[index]
    values["lr"] = 2.0  # mutating the source dict does not change hp
    assert hp.lr == 1e-3


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_hyperparameters_survive_pickle_and_copy(how: str) -> None:
    hp = Hyperparameters({"lr": 1e-3})
    clone = {
        "pickle": lambda: pickle.loads(pickle.dumps(hp)),
        "deepcopy": lambda: copy.deepcopy(hp),
        "copy": lambda: copy.copy(hp),
    }[how]()
    assert dict(clone) == {"lr": 1e-3}


# -- warmup_cosine -------------------------------------------------------------------------------


def _info(max_steps: int) -> WorkloadInfo:
    return WorkloadInfo(
        step_hint=max_steps,
        max_steps=max_steps,
        max_time_s=60.0,
        batch_size=8,
        tokens_per_step=8,
        scale="smoke",
        device="cpu",
    )


def test_warmup_ramps_linearly_to_one_at_the_end_of_warmup() -> None:
    schedule = warmup_cosine(Hyperparameters({"warmup_frac": 0.1}), _info(1000))  # 100 steps
    assert schedule(0) == pytest.approx(0.01)
    assert schedule(49) == pytest.approx(0.5)
    assert schedule(99) == pytest.approx(1.0)
    warm = [schedule(t) for t in range(100)]
    steps = [b - a for a, b in zip(warm, warm[1:], strict=False)]
    assert all(s == pytest.approx(0.01) for s in steps)  # linear
    assert schedule(100) == pytest.approx(1.0)  # decay starts from the peak
    assert schedule(101) < 1.0


@pytest.mark.parametrize("final_frac", [0.0, 0.1, 0.5])
def test_cosine_decay_middle_and_end(final_frac: float) -> None:
    hp = Hyperparameters({"warmup_frac": 0.1, "final_lr_frac": final_frac})
    schedule = warmup_cosine(hp, _info(1000))  # warmup 100, decay over 900 steps
    assert schedule(100 + 450) == pytest.approx(0.5 * (1 + final_frac))
    assert schedule(999) == pytest.approx(final_frac, abs=1e-4)
    assert schedule(1000) == pytest.approx(final_frac)
    assert schedule(5000) == pytest.approx(final_frac)  # clamped past the budget
    decay = [schedule(t) for t in range(100, 1001)]
    assert all(b <= a for a, b in zip(decay, decay[1:], strict=False))
    quarter = 100 + 225
    expected = final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi / 4))
    assert schedule(quarter) == pytest.approx(expected)


def test_schedule_defaults_are_five_percent_warmup_and_zero_final() -> None:
    schedule = warmup_cosine(Hyperparameters({}), _info(200))  # warmup 10
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(9) == pytest.approx(1.0)
    assert schedule(10 + 95) == pytest.approx(0.5)
    assert schedule(200) == pytest.approx(0.0)


def test_schedule_without_warmup_starts_at_one() -> None:
    schedule = warmup_cosine(Hyperparameters({"warmup_frac": 0.0}), _info(100))
    assert schedule(0) == pytest.approx(1.0)
    assert schedule(50) == pytest.approx(0.5)


# -- Clock ---------------------------------------------------------------------------------------


class _Recorder:
    """A fake time source and device sync that log the order in which they are called."""

    def __init__(self, times: list[float]) -> None:
        self._times: Iterator[float] = iter(times)
        self.log: list[str] = []

    def sync(self) -> None:
        self.log.append("sync")

    def now(self) -> float:
        self.log.append("now")
        return next(self._times)


def test_clock_regions_accumulate_into_separate_fields() -> None:
    rec = _Recorder([0.0, 1.5, 10.0, 12.0, 20.0, 20.25, 30.0, 31.0, 40.0, 44.0, 50.0, 50.5])
    clock = Clock(sync=rec.sync, now=rec.now)
    assert (clock.train_s, clock.compile_s, clock.eval_s) == (0.0, 0.0, 0.0)
    with clock.compiling():
        pass
    assert (clock.train_s, clock.compile_s, clock.eval_s) == (0.0, 1.5, 0.0)
    with clock.timed():
        pass
    with clock.evaluating():
        pass
    with clock.timed():
        pass
    with clock.evaluating():
        pass
    with clock.timed():
        pass
    assert clock.compile_s == pytest.approx(1.5)
    assert clock.train_s == pytest.approx(2.0 + 1.0 + 0.5)
    assert clock.eval_s == pytest.approx(0.25 + 4.0)


def test_clock_syncs_before_every_read() -> None:
    rec = _Recorder([float(t) for t in range(6)])
    clock = Clock(sync=rec.sync, now=rec.now)
    with clock.timed():
        rec.log.append("body")
    with clock.compiling():
        rec.log.append("body")
    with clock.evaluating():
        rec.log.append("body")
    assert rec.log == ["sync", "now", "body", "sync", "now"] * 3


def test_clock_counts_a_region_that_raises() -> None:
    rec = _Recorder([0.0, 3.0])
    clock = Clock(sync=rec.sync, now=rec.now)
    with pytest.raises(RuntimeError), clock.timed():
        raise RuntimeError("diverged")
    assert clock.train_s == pytest.approx(3.0)
    assert rec.log == ["sync", "now", "sync", "now"]


def test_clock_defaults_to_a_real_monotonic_time_source() -> None:
    clock = Clock()
    with clock.timed():
        sum(range(1000))
    assert clock.train_s >= 0.0
    assert clock.compile_s == clock.eval_s == 0.0


# -- loading a submission -------------------------------------------------------------------------


@pytest.mark.parametrize("statement", ["import sys\nsys.exit(3)", "raise KeyboardInterrupt"])
def test_a_module_that_exits_at_import_is_a_contract_error(statement: str, tmp_path: Path) -> None:
    (tmp_path / "submission.py").write_text(statement + "\n")
    (tmp_path / "search_space.json").write_text('{"lr": {"min": 0.1, "max": 1.0}}')
    exited = r"submission.py: raised (SystemExit\(3\)|KeyboardInterrupt\(\)) at import"
    with pytest.raises(ContractError, match=exited):
        load_submission(tmp_path)
