"""The benchmark clock: the only place where a reported training second is measured.

Timed (accumulated into `train_time_s`):
  fetching the step's batch, forward, backward, gradient clipping, the optimizer step, the
  schedule update, and a submission's `prepare_for_eval`.
Untimed:
  setup, data staging onto the device, model and optimizer construction, evaluation, logging,
  checkpointing, result writing. Compile warm-up is timed separately into `compile_time_s`.

On CPU every region boundary is read exactly (there is nothing to synchronize). On an
accelerator, waiting for the device at every step would stall the host, which could otherwise
queue the next step's kernels while the current one runs; so back-to-back timed regions form one
span, synchronized and read only where a reading is needed (`settle`): before an evaluation or a
compile region, when a caller needs the exact time (`train_seconds`), and when the time budget may
be spent (`past`). The span's time, host code between its steps included (microseconds of loop
bookkeeping), is charged as training, as the speedruns do (synchronize, then read the clock, at
eval points only). Nothing inside a timed region may call `.item()`, log or do I/O: those belong to
the untimed code around it.
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
    """Accumulates seconds of named regions, synchronizing the device where a reading needs it.

    Args:
      sync: called before each clock read (`torch.cuda.synchronize` on GPU; a no-op on CPU).
      now: the time source, `time.perf_counter` by default.
      lazy: timed regions form spans settled only where a reading is needed (see the module
        docstring); `for_device` asks for it on an accelerator. Off: every boundary is read.

    `train_s` holds the settled training seconds; `train_seconds()` settles first.
    """

    def __init__(
        self,
        sync: Callable[[], None] = _no_sync,
        now: Callable[[], float] | None = None,
        lazy: bool = False,
    ):
        self._sync = sync
        self._now = now or time.perf_counter
        self._lazy = lazy
        self._span_start: float | None = None  # the synchronized start of the open span
        self._in_span = False  # inside a timed region (a settle there starts the span anew)
        self.train_s = 0.0
        self.compile_s = 0.0
        self.eval_s = 0.0

    @classmethod
    def for_device(cls, device: str | torch.device) -> Clock:
        """The clock of a trial on `device` (a torch device or its name): lazy on CUDA."""
        import torch

        is_cuda = torch.device(device).type == "cuda"
        return cls(sync=torch.cuda.synchronize if is_cuda else _no_sync, lazy=is_cuda)

    def _read(self) -> float:
        self._sync()
        return self._now()

    @contextmanager
    def _region(self, field: str) -> Iterator[None]:
        self.settle()
        start = self._read()
        try:
            yield
        finally:
            setattr(self, field, getattr(self, field) + self._read() - start)

    @contextmanager
    def _span(self) -> Iterator[None]:
        if self._span_start is None:
            self._span_start = self._read()
        self._in_span = True
        try:
            yield  # its end is read when the span settles
        finally:
            self._in_span = False

    def settle(self) -> None:
        """Synchronizes the device and charges the open span, if any, to training (inside a
        timed region, the rest of the region goes on in a new span)."""
        if self._span_start is not None:
            now = self._read()
            self.train_s += now - self._span_start
            self._span_start = now if self._in_span else None

    def train_seconds(self) -> float:
        """The exact training seconds so far (settles the open span)."""
        self.settle()
        return self.train_s

    def past(self, budget_s: float) -> bool:
        """Whether the training seconds have reached `budget_s`. A lazy clock settles only once
        the host's own clock says the budget may be spent (the device can only be behind it), so
        a trial can train past its budget by the work queued when it crosses; its recorded time
        is still exact."""
        if self._span_start is not None:
            unsynced = self.train_s + self._now() - self._span_start
            if unsynced < budget_s:
                return False
        return self.train_seconds() >= budget_s

    def timed(self) -> AbstractContextManager[None]:
        """A timed training region (batch fetch, forward, backward, step, prepare_for_eval)."""
        return self._span() if self._lazy else self._region("train_s")

    def compiling(self) -> AbstractContextManager[None]:
        """The compile warm-up region: reported as `compile_time_s`, never as training time."""
        return self._region("compile_s")

    def evaluating(self) -> AbstractContextManager[None]:
        """An evaluation region: reported as `eval_time_s`, never as training time."""
        return self._region("eval_s")
