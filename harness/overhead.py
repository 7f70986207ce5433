"""How much the runner costs: the same training through a minimal hand-written loop and the runner.

Both sides train the same workload from the same seed for the same steps with the same optimizer
(torch AdamW, `harness.schedules.warmup_cosine`) and the same batches, in this process, alternating
and repeated; each side's median is reported. Two ratios, runner over hand-written loop:

* `clock`: the runner's timed training seconds (`train_time_s`) over the loop's timed seconds:
  what the harness adds inside the region it reports (the stepper, the schedule, the clock).
* `wall`: the runner's whole trial minus its evaluations over the whole loop including setup:
  everything else the harness adds (compile warm-up, divergence checks, bookkeeping).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.contract import Hyperparameters
from harness.runner import run_trial
from harness.schedules import warmup_cosine
from harness.trial import TrialSpec

__all__ = ["OverheadResult", "measure_overhead"]

_POINT = {"lr": 3e-3, "weight_decay": 0.05, "beta1": 0.9, "beta2": 0.999, "warmup_frac": 0.05}


@dataclass(frozen=True, slots=True)
class OverheadResult:
    """Medians over repeats, in seconds, and the two runner / loop ratios."""

    steps: int
    loop_train_s: float
    loop_wall_s: float
    runner_train_s: float
    runner_wall_s: float

    @property
    def clock_ratio(self) -> float:
        return self.runner_train_s / self.loop_train_s

    @property
    def wall_ratio(self) -> float:
        return self.runner_wall_s / self.loop_wall_s


def _hand_written_loop(workload_name: str, data_dir: Path, seed: int, steps: int) -> tuple[float, float]:
    """The minimal loop: returns (seconds in the step loop, seconds including setup)."""
    from workloads import get_workload

    wall_start = time.perf_counter()
    workload = get_workload(workload_name, "smoke", data_dir)
    workload.setup(torch.device("cpu"), seed)
    model = workload.build_model(seed)
    opt = torch.optim.AdamW(
        workload.param_groups(model).torch_groups(_POINT["weight_decay"]), lr=_POINT["lr"],
        betas=(_POINT["beta1"], _POINT["beta2"]), eps=1e-8,
    )  # fmt: skip
    info = workload.info("cpu", max_steps=steps)
    schedule = warmup_cosine(Hyperparameters(_POINT), info)
    loop_start = time.perf_counter()
    for step in range(steps):
        batch = workload.get_batch(step)
        loss = workload.loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for group in opt.param_groups:
            group["lr"] = _POINT["lr"] * schedule(step)
        opt.step()
    end = time.perf_counter()
    return end - loop_start, end - wall_start


def measure_overhead(workload: str, data_dir: Path, steps: int, repeats: int = 3,
                     seed: int = 0) -> OverheadResult:  # fmt: skip
    """Runs both sides `repeats` times, alternating, with one torch thread; returns medians."""
    torch.set_num_threads(1)
    spec = TrialSpec(workload=workload, scale="smoke", submission="adamw",
                     hparams_json=TrialSpec.canonical_hparams(_POINT), seed=seed,
                     data_dir=str(data_dir), max_steps=steps, stop_at_target=False)  # fmt: skip
    run_trial(spec)  # warm both paths' one-time costs (imports, data build) before measuring
    loops, runs = [], []
    for _ in range(repeats):
        loops.append(_hand_written_loop(workload, data_dir, seed, steps))
        row = run_trial(spec).row
        if row["status"] == "failed":
            raise RuntimeError(row["error"])
        runs.append((row["train_time_s"], row["wall_time_s"] - row["eval_time_s"]))
    return OverheadResult(
        steps=steps,
        loop_train_s=statistics.median(t for t, _ in loops),
        loop_wall_s=statistics.median(w for _, w in loops),
        runner_train_s=statistics.median(t for t, _ in runs),
        runner_wall_s=statistics.median(w for _, w in runs),
    )
