"""The benchmark clock: the only place where a reported training second is measured.

Timed (accumulated into `train_time_s`):
  fetching the step's batch, forward, backward, gradient clipping, the optimizer step, the
  schedule update, and a submission's `prepare_for_eval`.
Untimed:
  setup, data staging onto the device, model and optimizer construction, evaluation, logging,
  checkpointing, result writing. Compile warm-up is timed separately into `compile_time_s`.

On an accelerator the device is synchronized before every clock read, so queued kernels are
charged to the region that launched them. Nothing inside a timed region may call `.item()`,
log or do I/O: those belong to the untimed code around it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the clock needs torch only to pick a device's synchronization
    import torch

__all__ = ["Clock"]


def _no_sync() -> None:
    return None


class Clock:
    """Accumulates seconds of named regions with device synchronization at each boundary.

    Args:
      sync: called before each clock read (`torch.cuda.synchronize` on GPU; a no-op on CPU).
      now: the time source, `time.perf_counter` by default.
    """

    def __init__(self, sync: Callable[[], None] = _no_sync, now: Callable[[], float] | None = None):
        self._sync = sync
        self._now = now or time.perf_counter
        self.train_s = 0.0
        self.compile_s = 0.0
        self.eval_s = 0.0

    @classmethod
    def for_device(cls, device: str | torch.device) -> Clock:
        """A clock that synchronizes `device` (a torch device or its name) before each read."""
        import torch

        is_cuda = torch.device(device).type == "cuda"
        return cls(sync=torch.cuda.synchronize if is_cuda else _no_sync)

    def _read(self) -> float:
        self._sync()
        return self._now()

    @contextmanager
    def _region(self, field: str) -> Iterator[None]:
        start = self._read()
        try:
            yield
        finally:
            setattr(self, field, getattr(self, field) + self._read() - start)

    def timed(self) -> AbstractContextManager[None]:
        """A timed training region (batch fetch, forward, backward, step, prepare_for_eval)."""
        return self._region("train_s")

    def compiling(self) -> AbstractContextManager[None]:
        """The compile warm-up region: reported as `compile_time_s`, never as training time."""
        return self._region("compile_s")

    def evaluating(self) -> AbstractContextManager[None]:
        """An evaluation region: reported as `eval_time_s`, never as training time."""
        return self._region("eval_s")
