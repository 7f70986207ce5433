"""Data parallelism and gradient accumulation: one global batch, any number of processes.

A step's global batch (`Workload.get_batch`) is cut into `world_size` equal contiguous shards, one
per process; each process splits its shard into micro-batches of `micro_batch_size` and
accumulates gradients:

    g_rank = sum_m (n_m / n_rank) · ∇ loss(micro-batch m)      (the gradient of the shard's mean)
    g      = (1 / world_size) · sum_rank g_rank                  (DDP's all-reduce average)

With equal shards `g` is the gradient of the global batch's mean loss, so a trial's steps do not
depend on how many processes run it or on the micro-batch size (up to float rounding). The loss
a step reports is the same global mean. Processes meet in `torch.distributed` (NCCL on GPUs, gloo
on CPU) over a TCP rendezvous on 127.0.0.1; the trial's rank 0 writes the record.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from harness.errors import ContractError

__all__ = [
    "Collective",
    "GradientPass",
    "free_port",
    "init_process_group",
    "leave_process_group",
    "shard_batch",
    "split_batch",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for the rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_process_group(rank: int, world_size: int, port: int, device: torch.device) -> None:
    """Joins the trial's process group: NCCL for CUDA devices, gloo otherwise."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(minutes=10),
    )


def leave_process_group() -> None:
    """Meets every rank at a barrier, then tears the group down: a rank that tore down while
    another still ran its last collective would take gloo's threads down with an abort."""
    with contextlib.suppress(RuntimeError):  # a peer already gone: nothing left to wait for
        dist.barrier()
    dist.destroy_process_group()


def _rows(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.size(0)
    if isinstance(batch, dict):
        return _rows(next(iter(batch.values())))
    return _rows(batch[0])


def _slice(batch: Any, start: int, stop: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if isinstance(batch, dict):
        return {key: _slice(value, start, stop) for key, value in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_slice(part, start, stop) for part in batch)
    raise ContractError(f"cannot split a batch of type {type(batch).__name__}")


def shard_batch(batch: Any, rank: int, world_size: int) -> Any:
    """Rows `[rank · B/W, (rank + 1) · B/W)` of every tensor in `batch` (tensors, tuples, dicts).

    Raises:
      ContractError: when the batch's B rows do not split evenly over `world_size` processes.
    """
    if world_size == 1:
        return batch
    rows = _rows(batch)
    if rows % world_size:
        raise ContractError(f"a batch of {rows} does not split evenly over {world_size} processes")
    per_rank = rows // world_size
    return _slice(batch, rank * per_rank, (rank + 1) * per_rank)


def split_batch(batch: Any, micro_batch_size: int | None) -> list[tuple[Any, float]]:
    """The micro-batches of `batch` with their weights n_m / n (None: the batch itself)."""
    rows = _rows(batch)
    if micro_batch_size is None or micro_batch_size >= rows:
        return [(batch, 1.0)]
    starts = range(0, rows, micro_batch_size)
    return [
        (
            _slice(batch, s, min(s + micro_batch_size, rows)),
            (min(s + micro_batch_size, rows) - s) / rows,
        )
        for s in starts
    ]


class Collective:
    """The few cross-process agreements the runner needs; identities when `world_size` is 1."""

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        self.rank = rank
        self.world_size = world_size

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of `value` over processes (a collective, no host sync on NCCL)."""
        if self.world_size == 1:
            return value
        total = value.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world_size

    def from_rank0(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's `flag` on every process: stop decisions (clock, target) are rank 0's."""
        if self.world_size == 1:
            return flag
        tensor = torch.tensor(float(flag and self.rank == 0), device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())


class GradientPass:
    """Forward and backward over this process's shard of a global batch, in micro-batches.

    `__call__(batch)` leaves the gradient of the global batch's mean loss in `.grad` (summed into
    whatever is there: callers zero first) and returns the detached global mean loss.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
        micro_batch_size: int | None,
        collective: Collective,
    ) -> None:
        self.collective = collective
        if collective.world_size > 1:
            self.model: torch.nn.Module = torch.nn.parallel.DistributedDataParallel(model)
        else:
            self.model = model
        self._loss_fn = loss_fn
        self._micro = micro_batch_size

    def loss(self, batch: Any) -> torch.Tensor:
        """The forward pass on this process's shard, with autograd on (no accumulation)."""
        shard = shard_batch(batch, self.collective.rank, self.collective.world_size)
        return self._loss_fn(self.model, shard)

    def __call__(self, batch: Any) -> torch.Tensor:
        shard = shard_batch(batch, self.collective.rank, self.collective.world_size)
        parts = split_batch(shard, self._micro)
        if len(parts) == 1:  # the common case adds nothing to the timed step
            loss = self._loss_fn(self.model, shard)
            loss.backward()
            return self.collective.mean(loss.detach())
        total = torch.zeros((), device=next(self.model.parameters()).device)
        for index, (micro, weight) in enumerate(parts):
            with self._sync_gradients(last=index == len(parts) - 1):
                loss = self._loss_fn(self.model, micro)
                (loss * weight).backward()
            total = total + loss.detach() * weight
        return self.collective.mean(total)

    def _sync_gradients(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """DDP all-reduces on the last micro-batch only; earlier ones accumulate locally."""
        if isinstance(self.model, torch.nn.parallel.DistributedDataParallel) and not last:
            return self.model.no_sync()
        return contextlib.nullcontext()
