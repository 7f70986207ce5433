"""Calibrates a smoke workload's target with the reference AdamW over several seeds.

Usage::

    python -m workloads.calibrate_smoke digits --seeds 5
    python -m workloads.calibrate_smoke nanogpt --seeds 5 --lr 3e-3

The reference: `torch.optim.AdamW(betas=(0.9, 0.999), eps=1e-8)`, `weight_decay` on the decayed
roles only (`ParamGroups.torch_groups`), the harness's default schedule `warmup_cosine`
(warmup_frac 0.05, cosine to 0 over `max_steps`), one torch thread, evaluation every
`eval_every_steps`. Per seed it prints the training time (the step loop only), the best metric by
80% of the budget, the final metric, and the first step at which each candidate target is met.
The suggested target is the best-by-80% value that at least `ceil(0.8 * seeds)` seeds reach.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.contract import Hyperparameters
from harness.schedules import warmup_cosine
from harness.workload import Target, Workload
from workloads import WORKLOADS, get_workload

__all__ = ["ReferenceRun", "main", "train_reference"]

# The reference recipe per workload: lr (the centre of the recorded log range) and weight decay.
REFERENCE_HP: dict[str, dict[str, float]] = {
    "digits": {"lr": 3e-3, "weight_decay": 0.05, "warmup_frac": 0.05},
    "nanogpt": {"lr": 1e-2, "weight_decay": 0.05, "warmup_frac": 0.05},
}


@dataclass(frozen=True, slots=True)
class ReferenceRun:
    """One reference training run.

    Attributes:
      train_cpu_s: CPU seconds of the step loop (this thread). With one torch thread this is the
        wall-clock time on an idle machine, and other processes sharing the cores barely move it.
      train_wall_s: wall-clock seconds of the step loop.
      curve: [(steps done, target metric)] at every eval.
    """

    train_cpu_s: float
    train_wall_s: float
    curve: list[tuple[int, float]]


def train_reference(workload: Workload, seed: int, hp: Hyperparameters) -> ReferenceRun:
    """Trains the reference AdamW for the full budget on `workload` (already set up with `seed`)."""
    config = workload.config
    model = workload.build_model(seed)
    groups = workload.param_groups(model)
    info = workload.info("cpu")
    opt = torch.optim.AdamW(
        groups.torch_groups(hp["weight_decay"]), lr=hp["lr"], betas=(0.9, 0.999), eps=1e-8
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(hp, info))
    curve: list[tuple[int, float]] = []
    cpu_s = wall_s = 0.0
    metric = config.target.metric
    for step in range(config.budget.max_steps):
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        loss = workload.loss(model, workload.get_batch(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        cpu_s += time.thread_time() - cpu0
        wall_s += time.perf_counter() - wall0
        if (step + 1) % config.eval_every_steps == 0:
            model.eval()
            with torch.no_grad():
                curve.append((step + 1, workload.evaluate(model)[metric]))
            model.train()
    return ReferenceRun(cpu_s, wall_s, curve)


def _first_reached(curve: list[tuple[int, float]], target: Target) -> int | None:
    return next((step for step, value in curve if target.is_met(value)), None)


def _report(name: str, results: dict[int, ReferenceRun]) -> None:
    config = WORKLOADS[name].configs["smoke"]
    at_80 = int(0.8 * config.budget.max_steps)
    declared = config.target
    best_by_80 = {
        seed: _best(declared, [v for s, v in run.curve if s <= at_80])
        for seed, run in results.items()
    }
    need = math.ceil(0.8 * len(results))
    ranked = sorted(best_by_80.values(), reverse=declared.direction == "max")
    suggested = ranked[need - 1]
    # Candidates: each seed's best-by-80% value, rounded to 3 decimals in the lenient direction.
    lenient = math.ceil if declared.direction == "min" else math.floor
    candidates = sorted({declared.value, *(lenient(v * 1000) / 1000 for v in ranked)})
    print(f"\n{name} smoke: max_steps={config.budget.max_steps}, 80% = step {at_80}")
    header = "| seed | train cpu s | train wall s | best by 80% | final | " + " | ".join(
        f"step to {c:g}" for c in candidates
    )
    print(header + " |")
    print("|" + "---|" * (5 + len(candidates)))
    for seed, run in results.items():
        steps = []
        for c in candidates:
            reached = _first_reached(run.curve, Target(declared.metric, c, declared.direction))
            steps.append("-" if reached is None else str(reached))
        print(
            f"| {seed} | {run.train_cpu_s:.2f} | {run.train_wall_s:.2f} | "
            f"{best_by_80[seed]:.4f} | {run.curve[-1][1]:.4f} | " + " | ".join(steps) + " |"
        )
    print(f"suggested target ({need}/{len(results)} seeds by 80%): {suggested:.4f}")
    print(f"declared target: {declared.value} ({declared.direction})")


def _best(target: Target, values: list[float]) -> float:
    best = values[0]
    for v in values[1:]:
        best = target.better(best, v)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: `python -m workloads.calibrate_smoke WORKLOAD --seeds N`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=sorted(REFERENCE_HP))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--lr", type=float, default=None, help="override the reference lr")
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    hp_values = dict(REFERENCE_HP[args.workload])
    if args.lr is not None:
        hp_values["lr"] = args.lr
    if args.weight_decay is not None:
        hp_values["weight_decay"] = args.weight_decay
    hp = Hyperparameters(hp_values)
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{datetime.date.today()}: python -m workloads.calibrate_smoke {shown}")
    print(f"reference AdamW betas=(0.9, 0.999) eps=1e-8, {hp_values}, threads=1")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        results: dict[int, ReferenceRun] = {}
        for seed in range(args.seeds):
            workload = get_workload(args.workload, "smoke", data_dir)
            workload.setup(torch.device("cpu"), seed)
            results[seed] = train_reference(workload, seed, hp)
            run = results[seed]
            curve = ", ".join(f"{step}: {value:.4f}" for step, value in run.curve)
            print(f"seed {seed}: {run.train_cpu_s:.2f} cpu s, curve {curve}", flush=True)
    _report(args.workload, results)


if __name__ == "__main__":
    main()
