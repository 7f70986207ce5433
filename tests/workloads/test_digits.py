"""The Digits workload: split, roles, batches, training signal, eval."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.contract import Role
from harness.workload import Direction
from workloads.digits import Digits, DigitsCNN


def _workload(tmp_path: Path, seed: int = 0) -> Digits:
    workload = Digits("smoke", tmp_path)
    workload.setup(torch.device("cpu"), seed)
    return workload


def test_split_is_fixed_and_independent_of_the_seed(tmp_path: Path) -> None:
    a, b = _workload(tmp_path, 0), _workload(tmp_path, 5)
    images, labels = a._test
    assert images.shape == (360, 1, 8, 8) and labels.shape == (360,)
    assert a._train_shifted.shape == (9, 1437, 1, 8, 8)
    assert torch.equal(images, b._test[0]) and torch.equal(labels, b._test[1])
    assert torch.bincount(labels).min() >= 35  # stratified: every class has ~36 test images


def test_roles_by_kind_of_parameter(tmp_path: Path) -> None:
    workload = _workload(tmp_path)
    model = workload.build_model(seed=0)
    roles = workload.param_roles(model)
    assert set(roles.values()) == {Role.CONV, Role.NORM, Role.BIAS, Role.MATRIX, Role.HEAD}
    assert roles["conv1.weight"] is Role.CONV
    assert roles["bn1.weight"] is Role.NORM and roles["bn1.bias"] is Role.BIAS
    assert roles["fc.weight"] is Role.MATRIX and roles["fc.bias"] is Role.BIAS
    assert roles["head.weight"] is Role.HEAD and roles["head.bias"] is Role.BIAS


def test_batches_are_deterministic_in_seed_and_step(tmp_path: Path) -> None:
    a, b, other = _workload(tmp_path, 1), _workload(tmp_path, 1), _workload(tmp_path, 2)
    batch_size = a.config.batch_size
    images, labels = a.get_batch(30)  # epoch 1: 22 full batches per epoch
    assert images.shape == (batch_size, 1, 8, 8) and labels.shape == (batch_size,)
    assert labels.dtype == torch.int64
    assert a.config.tokens_per_step == batch_size and a.config.throughput_unit == "examples"
    for step in (0, 30, 30, 5, 399):  # revisits across epochs: the cache must not matter
        x, y = a.get_batch(step)
        assert torch.equal(x, b.get_batch(step)[0]) and torch.equal(y, b.get_batch(step)[1])
    assert not torch.equal(images, a.get_batch(31)[0])
    assert not torch.equal(images, other.get_batch(30)[0])


def test_an_epoch_visits_each_image_once(tmp_path: Path) -> None:
    workload = _workload(tmp_path, 3)
    steps = workload._steps_per_epoch
    labels = torch.cat([workload.get_batch(steps + i)[1] for i in range(steps)])  # epoch 1
    used = workload._order(1)[: steps * workload.config.batch_size]
    assert len(set(used.tolist())) == len(used) == len(labels)
    assert torch.equal(labels, workload._train_labels[used])


def test_adamw_steps_reduce_the_loss_and_eval_reports_the_target(tmp_path: Path) -> None:
    workload = _workload(tmp_path)
    model = workload.build_model(seed=0)
    assert isinstance(model, DigitsCNN)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = workload.loss(model, workload.get_batch(0)).item()
    for step in range(30):
        loss = workload.loss(model, workload.get_batch(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert workload.loss(model, workload.get_batch(0)).item() < first / 2
    model.eval()
    with torch.no_grad():
        metrics = workload.evaluate(model)
    target = workload.config.target
    assert target.metric == "test_accuracy" and target.direction is Direction.MAX
    assert set(metrics) == {"test_accuracy", "test_loss"}
    assert 0.8 < metrics["test_accuracy"] <= 1.0
    assert metrics["test_loss"] < 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_model_init_is_seeded(tmp_path: Path, seed: int) -> None:
    workload = _workload(tmp_path)
    a, b = workload.build_model(seed), workload.build_model(seed)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = workload.build_model(seed + 10)
    assert not torch.equal(a.get_parameter("conv1.weight"), c.get_parameter("conv1.weight"))
