"""The harness's default learning-rate schedule, used when a submission defines no `schedule`.

The schedule is a multiplier on every param group's base learning rate:

    w = round(warmup_frac · T)                      (T = info.max_steps, the step budget)
    s(t) = (t + 1) / w                              for t < w   (linear warmup)
    s(t) = f + (1 − f) · ½ · (1 + cos(π · (t − w) / (T − w)))   for w <= t < T   (cosine decay)

with f = final_lr_frac. Defaults: warmup_frac = 0.05, final_lr_frac = 0.0 (both read from `hp`,
so a search space may tune them).
"""

from __future__ import annotations

import math

from harness.contract import Hyperparameters, ScheduleFn, WorkloadInfo

__all__ = ["warmup_cosine"]


def warmup_cosine(hp: Hyperparameters, info: WorkloadInfo) -> ScheduleFn:
    """Linear warmup then cosine decay over the step budget; see the module docstring."""
    total_steps = info.max_steps
    warmup_steps = max(0, round(float(hp.get("warmup_frac", 0.05)) * total_steps))
    final_frac = float(hp.get("final_lr_frac", 0.0))

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_frac + (1.0 - final_frac) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return multiplier
