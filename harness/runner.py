"""The trial runner: setup, compile warm-up, the timed step loop, evals, and the trial's record.

One call of `run_trial` is one trial; callers run it in a fresh process (`harness.isolation`, a
Ray worker, a SLURM job). Every failure inside becomes data here, once: status `failed` with the
traceback, or `diverged` on a non-finite loss or metric. The clock lives in `harness.clock`.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness import memory
from harness.clock import Clock
from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo
from harness.provenance import collect_provenance, cpu_model
from harness.results import PROVENANCE_FIELDS, TRIALS_SCHEMA
from harness.stepper import Stepper, make_stepper
from harness.submission import load_submission
from harness.trial import TrialSpec, TrialStatus
from harness.workload import Workload

__all__ = ["TrialOutcome", "hardware_class", "run_trial"]


@dataclass(slots=True)
class TrialOutcome:
    """A finished trial: one `trials` row and its `evals` rows (schemas in `harness.results`)."""

    row: dict[str, Any]
    evals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> TrialStatus:
        return TrialStatus(self.row["status"])


def hardware_class(device: torch.device, num_threads: int) -> str:
    """Wall-clock results compare only within one hardware class."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} x1"
    return f"cpu {cpu_model()} ({num_threads} thread{'s' if num_threads > 1 else ''})"


def run_trial(spec: TrialSpec) -> TrialOutcome:
    """Runs one trial to its target, budget, divergence or error and returns its record."""
    from workloads import get_workload  # workloads import harness: resolve at call time

    wall_start = time.perf_counter()
    torch.set_num_threads(spec.num_threads)
    device = torch.device(spec.device)
    record = _Record(spec, device)
    try:
        submission = load_submission(spec.submission)
        workload = get_workload(spec.workload, spec.scale, Path(spec.data_dir))
        record.describe(workload, submission.name, submission.source_hash)
        hp = Hyperparameters(spec.hparams)
        submission.search_space.validate_point(hp)
        workload.setup(device, spec.seed)
        peak = memory.PeakMemory(device)  # after data staging: the peak is the model's and steps'
        model = workload.build_model(spec.seed)
        groups = workload.param_groups(model)
        info = workload.info(str(device), spec.max_steps, spec.max_time_s)
        stepper = make_stepper(submission, groups, hp, info, lambda b: workload.loss(model, b))
        _compile_warmup(stepper, model, workload, record.clock)
        peak.reset()  # the peak of the training steps, not of one-time warm-up work
        _train(workload, model, stepper, info, spec, record)
        record.memory(model, groups, stepper, peak.read())
    except Exception:  # the trial boundary: the one place where failures become data
        record.fail(traceback.format_exc())
    record.row["wall_time_s"] = time.perf_counter() - wall_start
    return record.outcome()


def _train(workload: Workload, model: torch.nn.Module, stepper: Stepper, info: WorkloadInfo,
           spec: TrialSpec, record: _Record) -> None:  # fmt: skip
    """The step loop: timed steps, evals every k steps, stop at target / budget / divergence."""
    clock, every = record.clock, workload.config.eval_every_steps
    is_nonfinite = torch.zeros((), dtype=torch.bool, device=_model_device(model))
    for step in range(info.max_steps):
        with clock.timed():
            batch = workload.get_batch(step)
            loss = stepper.step(batch, step)
        is_nonfinite |= ~torch.isfinite(loss)  # stays on the device: no sync per step
        done_steps = step + 1
        out_of_time = clock.train_s >= info.max_time_s
        if done_steps % every and done_steps < info.max_steps and not out_of_time:
            continue
        with clock.timed():
            stepper.prepare_for_eval()
        metrics = _evaluate(workload, model, clock)
        metrics["train_loss"] = float(loss)
        record.eval_point(done_steps, metrics)
        if bool(is_nonfinite) or not all(math.isfinite(v) for v in metrics.values()):
            record.finish(TrialStatus.DIVERGED)
            return
        if record.reached_target and spec.stop_at_target:
            break
        if out_of_time:
            break
    record.finish(TrialStatus.TARGET_REACHED if record.reached_target else TrialStatus.BUDGET_EXHAUSTED)


def _evaluate(workload: Workload, model: torch.nn.Module, clock: Clock) -> dict[str, float]:
    with clock.evaluating():
        model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in workload.evaluate(model).items()}
        model.train()
    return metrics


def _compile_warmup(stepper: Stepper, model: torch.nn.Module, workload: Workload,
                    clock: Clock) -> None:  # fmt: skip
    """One step on batch 0 timed as compile time (jit, lazy init), then the state is restored."""
    optimizer_snapshot = stepper.snapshot()
    if optimizer_snapshot is None:
        return  # a full-control submission without state_dict: no warm-up, nothing to undo
    model_snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with clock.compiling():
        stepper.step(workload.get_batch(0), 0)
    model.load_state_dict(model_snapshot)
    stepper.restore(optimizer_snapshot)
    for param in model.parameters():
        param.grad = None


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


class _Record:
    """Accumulates a trial's row and eval rows as the trial runs (all untimed)."""

    def __init__(self, spec: TrialSpec, device: torch.device) -> None:
        self.spec = spec
        self.clock = Clock(sync=torch.cuda.synchronize if device.type == "cuda" else _no_sync)
        self.evals: list[dict[str, Any]] = []
        self.reached_target = False
        self._target: Any = None
        self._tokens_per_step = 0
        self._eval_points: list[tuple[int, float]] = []
        self.row: dict[str, Any] = {
            "trial_id": spec.trial_id(0, spec.submission, ""), "workload": spec.workload,
            "scale": spec.scale, "submission": spec.submission, "hparams_json": spec.hparams_json,
            "seed": spec.seed, "ruleset": spec.ruleset, "ruleset_json": spec.ruleset_json,
            "study": spec.study, "trial_index": spec.trial_index, "num_threads": spec.num_threads,
            "hardware_class": hardware_class(device, spec.num_threads), "steps": 0, "tokens": 0,
            "error": None,
        }  # fmt: skip
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        self.row.update(collect_provenance(name, spec.command_line or None))

    def describe(self, workload: Workload, submission_name: str, submission_hash: str) -> None:
        config = workload.config
        self._target = config.target
        self._tokens_per_step = config.tokens_per_step
        self.row.update(
            trial_id=self.spec.trial_id(workload.version, submission_name, submission_hash),
            workload_version=workload.version, submission=submission_name,
            submission_hash=submission_hash, precision=config.precision,
            throughput_unit=config.throughput_unit, target_metric=config.target.metric,
            target_value=config.target.value, target_direction=str(config.target.direction),
        )  # fmt: skip

    def eval_point(self, steps: int, metrics: dict[str, float]) -> None:
        tokens = steps * self._tokens_per_step
        index = len(self._eval_points)
        self._eval_points.append((steps, self.clock.train_s))
        for name, value in sorted(metrics.items()):
            self.evals.append({
                "trial_id": self.row["trial_id"], "eval_index": index, "step": steps,
                "tokens": tokens, "train_time_s": self.clock.train_s, "metric": name,
                "value": value,
            })  # fmt: skip
        value = metrics[self._target.metric]
        best = self.row.get("best_metric")
        self.row.update(
            steps=steps, tokens=tokens, final_metric=value,
            best_metric=value if best is None else self._target.better(best, value),
        )  # fmt: skip
        if not self.reached_target and self._target.is_met(value):
            self.reached_target = True
            self.row.update(time_to_target_s=self.clock.train_s, steps_to_target=steps,
                            tokens_to_target=tokens)  # fmt: skip

    def finish(self, status: TrialStatus) -> None:
        self.row["status"] = str(status)
        (first_steps, first_s), (last_steps, last_s) = self._eval_points[0], self._eval_points[-1]
        if last_s > first_s:  # steady state: after the first eval interval
            rate = (last_steps - first_steps) / (last_s - first_s)
        else:
            rate = last_steps / last_s if last_s > 0 else float("nan")
        self.row["throughput_per_s"] = rate * self._tokens_per_step

    def memory(self, model: torch.nn.Module, groups: ParamGroups, stepper: Stepper,
               peak: tuple[int, str]) -> None:  # fmt: skip
        params = list(groups.params)
        not_state = params + list(model.buffers())  # e.g. BatchNorm statistics
        static = {
            "params_bytes": memory.params_bytes(params),
            "grads_bytes": memory.grads_bytes(params),
            "optimizer_state_bytes": memory.optimizer_state_bytes(stepper.optimizer_state, not_state),
        }
        peak_bytes, source = peak
        self.row.update(static, peak_bytes=peak_bytes, peak_source=source,
                        activations_bytes=max(0, peak_bytes - sum(static.values())))  # fmt: skip

    def fail(self, error: str) -> None:
        self.row.update(status=str(TrialStatus.FAILED), error=error)

    def outcome(self) -> TrialOutcome:
        self.row.update(train_time_s=self.clock.train_s, compile_time_s=self.clock.compile_s,
                        eval_time_s=self.clock.eval_s)  # fmt: skip
        for row in self.evals:
            row["trial_id"] = self.row["trial_id"]
        provenance = {f.name: self.row[f.name] for f in PROVENANCE_FIELDS}
        evals = [{**row, **provenance} for row in self.evals]
        full = {name: self.row.get(name) for name in TRIALS_SCHEMA.names}
        return TrialOutcome(row=full, evals=evals)


def _no_sync() -> None:
    return None




def failed_outcome(spec: TrialSpec, error: str) -> TrialOutcome:
    """The record of a trial that died outside `run_trial` (its process killed or crashed)."""
    from workloads import get_workload

    record = _Record(spec, torch.device(spec.device))
    try:
        submission = load_submission(spec.submission)
        workload = get_workload(spec.workload, spec.scale, Path(spec.data_dir))
        record.describe(workload, submission.name, submission.source_hash)
    except Exception as exc:  # describing is best effort: the failure itself is what matters
        error += f"\n(while describing the trial: {exc})"
    record.fail(error)
    return record.outcome()
