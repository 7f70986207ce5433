"""Data parallelism and gradient accumulation give the steps of one process with the whole batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from harness.errors import ContractError
from harness.parallel import Collective, GradientPass, shard_batch, split_batch
from harness.runner import run_trial
from harness.trial import TrialSpec, TrialStatus
from workloads import get_workload

ADAMW_POINT = {"lr": 5e-3, "weight_decay": 0.05, "beta1": 0.9, "warmup_frac": 0.05}


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    inputs, targets = batch
    return (model(inputs) - targets).square().mean()


def test_shards_are_equal_contiguous_rows_and_uneven_batches_are_refused() -> None:
    batch = (torch.arange(12).view(6, 2), {"y": torch.arange(6)})
    first, second = shard_batch(batch, 0, 2), shard_batch(batch, 1, 2)
    assert first[0].tolist() == [[0, 1], [2, 3], [4, 5]] and second[1]["y"].tolist() == [3, 4, 5]
    with pytest.raises(ContractError, match="does not split evenly over 4"):
        shard_batch(batch, 0, 4)


def test_micro_batches_cover_the_batch_with_weights_that_sum_to_one() -> None:
    parts = split_batch((torch.arange(10),), 4)
    assert [p[0][0].tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [w for _, w in parts] == [0.4, 0.4, 0.2]
    assert split_batch((torch.arange(3),), None)[0][1] == 1.0


@pytest.mark.parametrize("micro_batch_size", [1, 4, 5])
def test_accumulated_gradient_equals_the_whole_batch_gradient(micro_batch_size: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    batch = (torch.randn(10, 3), torch.randn(10, 2))
    whole = GradientPass(model, _mse, None, Collective())
    loss_whole = whole(batch)
    grads_whole = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    accumulated = GradientPass(model, _mse, micro_batch_size, Collective())
    loss_accumulated = accumulated(batch)
    torch.testing.assert_close(loss_accumulated, loss_whole, rtol=1e-6, atol=1e-7)
    for p, g in zip(model.parameters(), grads_whole, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)


def _nanogpt_spec(data_dir: Path, world_size: int) -> TrialSpec:
    return TrialSpec(
        workload="nanogpt",
        scale="smoke",
        submission="adamw",
        hparams_json=TrialSpec.canonical_hparams(ADAMW_POINT),
        seed=0,
        data_dir=str(data_dir),
        world_size=world_size,
        max_steps=20,
        stop_at_target=False,
    )


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(data_dir: Path) -> None:
    one = run_trial(_nanogpt_spec(data_dir, 1), get_workload)
    two = run_trial(_nanogpt_spec(data_dir, 2), get_workload)
    assert one.status is TrialStatus.BUDGET_EXHAUSTED, one.row["error"]
    assert two.status is TrialStatus.BUDGET_EXHAUSTED, two.row["error"]
    assert len(one.train_losses) == len(two.train_losses) == 20
    assert one.train_losses[-1] < one.train_losses[0] - 0.5  # it trains: the curves mean something
    for step, (a, b) in enumerate(zip(one.train_losses, two.train_losses, strict=True)):
        assert abs(a - b) <= 1e-4 * abs(a), f"step {step}: 1 process {a}, 2 processes {b}"
    assert two.row["hardware_class"].endswith("x2")
    assert one.row["trial_id"] != two.row["trial_id"]
