"""A workload's target: the value a trial must reach, and the seed gate a claim must pass.

Torch-free: the reports read targets back from the store's rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Direction", "Target"]


class Direction(StrEnum):
    """Whether the target metric improves downwards (loss, error) or upwards (accuracy)."""

    MIN = "min"
    MAX = "max"


@dataclass(frozen=True, slots=True)
class Target:
    """The value a trial must reach, and the seed gate a claim of reaching it must pass.

    Attributes:
      metric: name of the eval metric compared with `value` (a key of `Workload.evaluate`).
      value: the target value.
      direction: `min` (metric <= value) or `max` (metric >= value).
      seeds: how many seeds a target claim averages over in reports (the seed gate's n).
      gate_margin: the seed gate's margin (see `gate_passes`); 0 asks only that the mean meets it.
      provisional: True until `optbench calibrate WORKLOAD --scale SCALE` has confirmed the value on
        this scale's hardware class (the reference reaches it in >= 95% of seeds at ~80% of the
        budget); the workload's docstring says what is still to be run.
    """

    metric: str
    value: float
    direction: Direction
    seeds: int = 1
    provisional: bool = False
    gate_margin: float = 0.0

    def gate_passes(self, values: list[float]) -> bool:
        """The seed gate: at least `seeds` finite values whose mean beats the target by a margin,

            (value - mean) · sqrt(n) >= gate_margin   (direction min; mirrored for max)

        the speedrun's test that a claimed record is not one lucky seed.
        """
        finite = [v for v in values if math.isfinite(v)]
        if len(finite) < max(self.seeds, 1) or len(finite) < len(values):
            return False
        mean = sum(finite) / len(finite)
        slack = self.value - mean if self.direction is Direction.MIN else mean - self.value
        return slack * math.sqrt(len(finite)) >= self.gate_margin

    def is_met(self, metric_value: float) -> bool:
        """True when `metric_value` is finite and on the right side of the target."""
        if not math.isfinite(metric_value):
            return False
        if self.direction is Direction.MIN:
            return metric_value <= self.value
        return metric_value >= self.value

    def better(self, a: float, b: float) -> float:
        """The better of two metric values (non-finite values lose)."""
        if not math.isfinite(a):
            return b
        if not math.isfinite(b):
            return a
        return min(a, b) if self.direction is Direction.MIN else max(a, b)
