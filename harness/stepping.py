"""What a stepper is: the interface through which the runner drives a submission's steps.

Each submission level has its own stepper (`harness.stepper` for levels 1 and 2,
`harness.algoperf.stepper` for level 3); the runner sees only `Stepper`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from harness.clock import Clock
    from harness.workload import Workload

__all__ = ["ForwardBackward", "LossFn", "Stepper", "TrainingComplete", "TrialContext"]

LossFn = Callable[[Any], torch.Tensor]
# forward + backward of a whole step's batch, returning the detached mean loss (GradientPass)
ForwardBackward = Callable[[Any], torch.Tensor]


class TrainingComplete(Exception):
    """Raised by `Stepper.step` instead of stepping when the submission declares training done
    (AlgoPerf's `TrainingCompleteError`): the runner evaluates once more and ends the trial."""


@dataclass(frozen=True, slots=True)
class TrialContext:
    """The trial's pieces a level-3 (AlgoPerf) submission's adapter needs besides the groups.

    Attributes:
      model: the model (not a DDP wrapper); `ParamGroups` holds its trainable parameters.
      workload: the set-up workload the model belongs to.
      seed: the trial's seed (the submission's `rng` keys derive from it and the step).
      world_size: processes in the trial.
      clock: the trial's clock (AlgoPerf's `train_state` reports its times).
    """

    model: torch.nn.Module
    workload: Workload
    seed: int
    world_size: int
    clock: Clock


class Stepper:
    """Drives one submission's steps on one model; the runner sees only this interface."""

    optimizer_state: Any  # what the memory accounting walks for optimizer-state bytes

    def step(self, batch: Any, step: int) -> torch.Tensor:
        """One training step; returns the detached training loss (no host sync).

        Raises:
          TrainingComplete: the submission ended training instead of taking this step.
        """
        raise NotImplementedError

    def prepare_for_eval(self) -> None:
        """The submission's weight swap before evaluation (schedule-free, EMA); timed."""

    def observe_eval(self, steps: int, metrics: Mapping[str, float]) -> None:
        """Hears the metrics of the eval after `steps` steps (untimed; AlgoPerf's eval_results)."""

    def snapshot(self) -> Any | None:
        """Optimizer state to restore after the compile warm-up, or None if it cannot be taken."""
        return None

    def restore(self, snapshot: Any) -> None:
        raise NotImplementedError
