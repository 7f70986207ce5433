"""How much the runner costs: the same training through a minimal hand-written loop and the runner.

Both sides train the same smoke workload from the same seed for the same steps with the same
optimizer and the same batches, in this process, alternating and repeated; each side's median is
reported. The optimizer is the `adamw` reference submission at its search space's centre with
`POINT_OVERRIDES` (validated through that space, so the point cannot drift from it): the runner
steps the submission itself, and the loop builds torch AdamW from the same point and the
submission's own `DEFAULTS` (beta2, eps), with `harness.schedules.warmup_cosine`. Two ratios,
runner over hand-written loop:

* `clock`: the runner's timed training seconds (`train_time_s`) over the loop's timed seconds:
  what the harness adds inside the region it reports (the stepper, the schedule, the clock).
* `wall`: the runner's whole trial minus its evaluations over the whole loop including setup:
  everything else the harness adds (compile warm-up, divergence checks, bookkeeping).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.atomic import write_text_atomic
from harness.contract import Hyperparameters
from harness.provenance import collect_provenance
from harness.runner import run_trial
from harness.schedules import warmup_cosine
from harness.submission import Submission, load_submission
from harness.trial import FINISHED, TrialSpec, TrialStatus
from workloads import get_workload

__all__ = [
    "POINT_OVERRIDES",
    "OverheadResult",
    "measure_overhead",
    "overhead_point",
    "write_report",
]

SUBMISSION = "adamw"
SCALE = "smoke"
# The point the benchmark has always measured (digits' reference AdamW); the rest is the centre.
POINT_OVERRIDES: Mapping[str, Any] = {"lr": 3e-3, "weight_decay": 0.05}
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class OverheadResult:
    """One run of the benchmark: what ran, each repeat's seconds, and the medians and ratios.

    Attributes:
      workload: the workload's name (at scale `smoke`).
      steps: training steps per side and repeat.
      seed: model init and data order of both sides.
      hparams_json: the AdamW point both sides trained with (canonical JSON).
      optimizer_defaults_json: the submission's fixed constants the loop used too (beta2, eps).
      loop_s: per repeat, the loop's (step-loop seconds, seconds including setup).
      runner_s: per repeat, the runner's (`train_time_s`, wall seconds minus evaluations).
      provenance: `harness.provenance.collect_provenance` at the end of the run.
    """

    workload: str
    steps: int
    seed: int
    hparams_json: str
    optimizer_defaults_json: str
    loop_s: tuple[tuple[float, float], ...]
    runner_s: tuple[tuple[float, float], ...]
    provenance: Mapping[str, Any]

    @property
    def repeats(self) -> int:
        return len(self.loop_s)

    @property
    def loop_train_s(self) -> float:
        return statistics.median(t for t, _ in self.loop_s)

    @property
    def loop_wall_s(self) -> float:
        return statistics.median(w for _, w in self.loop_s)

    @property
    def runner_train_s(self) -> float:
        return statistics.median(t for t, _ in self.runner_s)

    @property
    def runner_wall_s(self) -> float:
        return statistics.median(w for _, w in self.runner_s)

    @property
    def clock_ratio(self) -> float:
        return self.runner_train_s / self.loop_train_s

    @property
    def wall_ratio(self) -> float:
        return self.runner_wall_s / self.loop_wall_s

    def markdown(self) -> str:
        """The result as Markdown: what ran, on what, the median seconds and the two ratios."""
        p = self.provenance
        dirty = " (dirty)" if p.get("git_dirty") else ""
        commit = (p.get("git_commit") or "unknown")[:12] + dirty
        return (
            "\n".join(
                [
                    "# optbench bench overhead",
                    "",
                    f"{self.workload}@{SCALE}, {self.steps} steps, seed {self.seed}; "
                    f"{self.repeats} repeat{'s' if self.repeats != 1 else ''}, "
                    "alternating, medians; 1 torch thread",
                    "",
                    f"optimizer: `{SUBMISSION}` at {self.hparams_json}, "
                    f"with {self.optimizer_defaults_json}; "
                    "warmup + cosine schedule",
                    "",
                    f"machine: {p.get('cpu_model', '?')}, torch {p.get('torch_version', '?')}, "
                    f"commit {commit}",
                    "",
                    "| side | timed s | whole s |",
                    "|---|--:|--:|",
                    f"| hand-written loop | {self.loop_train_s:.3f} | {self.loop_wall_s:.3f} |",
                    f"| optbench runner | {self.runner_train_s:.3f} | {self.runner_wall_s:.3f} |",
                    "",
                    f"- clock ratio (runner/loop): {self.clock_ratio:.3f}  (goal <= 1.05)",
                    f"- wall ratio  (runner/loop): {self.wall_ratio:.3f}",
                    "",
                    "timed s: the loop's step loop; the runner's `train_time_s`, from its clock. "
                    "whole s: the loop with its setup (workload, model, optimizer); the runner's "
                    "whole trial minus its evaluations.",
                ]
            )
            + "\n"
        )

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data (schema `optbench.bench_overhead`, versioned)."""
        return {
            "schema": "optbench.bench_overhead",
            "schema_version": SCHEMA_VERSION,
            "workload": self.workload,
            "scale": SCALE,
            "submission": SUBMISSION,
            "steps": self.steps,
            "repeats": self.repeats,
            "seed": self.seed,
            "num_threads": 1,
            "hparams": json.loads(self.hparams_json),
            "optimizer_defaults": json.loads(self.optimizer_defaults_json),
            "loop_s": [list(r) for r in self.loop_s],
            "runner_s": [list(r) for r in self.runner_s],
            "loop_train_s": self.loop_train_s,
            "loop_wall_s": self.loop_wall_s,
            "runner_train_s": self.runner_train_s,
            "runner_wall_s": self.runner_wall_s,
            "clock_ratio": self.clock_ratio,
            "wall_ratio": self.wall_ratio,
            "provenance": dict(self.provenance),
        }


def overhead_point(submission: Submission | None = None) -> dict[str, Any]:
    """The AdamW point both sides train with: the space's centre with `POINT_OVERRIDES`.

    Raises:
      ContractError: the `adamw` search space no longer holds the point (names or ranges).
    """
    submission = submission or load_submission(SUBMISSION)
    point = {**submission.search_space.center(), **POINT_OVERRIDES}
    submission.search_space.validate_point(point)
    return point


def _hand_written_loop(
    workload_name: str,
    data_dir: Path,
    seed: int,
    steps: int,
    point: Mapping[str, Any],
    defaults: Mapping[str, float],
) -> tuple[float, float]:
    """The minimal loop: returns (seconds in the step loop, seconds including setup)."""
    wall_start = time.perf_counter()
    workload = get_workload(workload_name, SCALE, data_dir)
    workload.setup(torch.device("cpu"), seed)
    model = workload.build_model(seed)
    opt = torch.optim.AdamW(
        workload.param_groups(model).torch_groups(point["weight_decay"]),
        lr=point["lr"],
        betas=(point["beta1"], defaults["beta2"]),
        eps=defaults["eps"],
    )
    info = workload.info("cpu", max_steps=steps)
    schedule = warmup_cosine(Hyperparameters(point), info)
    loop_start = time.perf_counter()
    for step in range(steps):
        batch = workload.get_batch(step)
        loss = workload.loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for group in opt.param_groups:
            group["lr"] = point["lr"] * schedule(step)
        opt.step()
    end = time.perf_counter()
    return end - loop_start, end - wall_start


def _runner_seconds(spec: TrialSpec) -> tuple[float, float]:
    """One runner trial: (`train_time_s`, wall seconds minus evaluations).

    Raises:
      RuntimeError: the trial did not train to its step budget (its error, if any, attached).
    """
    row = run_trial(spec, get_workload).row
    if TrialStatus(row["status"]) not in FINISHED:
        raise RuntimeError(f"the runner's trial ended {row['status']}: {row['error'] or ''}")
    return row["train_time_s"], row["wall_time_s"] - row["eval_time_s"]


def measure_overhead(
    workload: str,
    data_dir: Path,
    steps: int,
    repeats: int = 3,
    seed: int = 0,
    command_line: str | None = None,
) -> OverheadResult:
    """Runs both sides `repeats` times, alternating, with one torch thread; returns the result.

    Args:
      command_line: the command that asked for the run, for the provenance (default: this
        process's argv).

    Raises:
      UsageError: an unknown workload, or one without a smoke scale (before anything runs).
      ContractError: the `adamw` submission no longer holds the benchmark's point.
    """
    get_workload(workload, SCALE, data_dir)  # refuses an unknown name; builds nothing
    submission = load_submission(SUBMISSION)
    point = overhead_point(submission)
    defaults = {key: submission.module.DEFAULTS[key] for key in ("beta2", "eps")}
    torch.set_num_threads(1)
    spec = TrialSpec(
        workload=workload,
        scale=SCALE,
        submission=SUBMISSION,
        hparams_json=TrialSpec.canonical_hparams(point),
        seed=seed,
        data_dir=str(data_dir),
        max_steps=steps,
        stop_at_target=False,
    )
    _runner_seconds(spec)  # warm both paths' one-time costs (imports, data build) before measuring
    loops, runs = [], []
    for _ in range(repeats):
        loops.append(_hand_written_loop(workload, data_dir, seed, steps, point, defaults))
        runs.append(_runner_seconds(spec))
    return OverheadResult(
        workload=workload,
        steps=steps,
        seed=seed,
        hparams_json=spec.hparams_json,
        optimizer_defaults_json=json.dumps(defaults, sort_keys=True),
        loop_s=tuple(loops),
        runner_s=tuple(runs),
        provenance=collect_provenance("cpu", command_line),
    )


def write_report(result: OverheadResult, path: Path) -> Path:
    """Writes the Markdown to `path` (a `.md` file) and the JSON beside it, each atomically.

    Returns:
      The JSON sidecar's path: `path` with suffix `.json`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = path.with_suffix(".json")
    write_text_atomic(path, result.markdown())
    write_text_atomic(sidecar, json.dumps(result.to_json(), indent=2) + "\n")
    return sidecar
