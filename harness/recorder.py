"""A trial's record as it is built: one `TrialRecord` (`harness.record`) and its eval rows.

The runner fills it while the trial runs (all of it untimed); `failed_outcome` builds the record
of a trial that ended outside the runner (its process killed, its job cancelled or out of time,
or stopped by the search's scheduler). Either way the trial's id is its `ResolvedTrial`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from harness import memory
from harness.clock import Clock
from harness.contract import ParamGroups
from harness.provenance import collect_provenance, cpu_model
from harness.record import EvalRecord, Provenance, TrialRecord
from harness.stepping import Stepper
from harness.submission import load_submission
from harness.trial import ResolvedTrial, RulesetName, TrialSpec, TrialStatus
from harness.workload import BuildWorkload, Workload

__all__ = ["Recorder", "TrialOutcome", "failed_outcome", "hardware_class"]


@dataclass(slots=True)
class TrialOutcome:
    """A finished trial: its record and its eval rows (schemas in `harness.results`)."""

    record: TrialRecord
    evals: list[dict[str, Any]] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)  # per step; not stored

    @property
    def row(self) -> Mapping[str, Any]:
        """The record as the store's row (read-only: change the record instead)."""
        return MappingProxyType(self.record.to_row())

    @property
    def status(self) -> TrialStatus:
        return TrialStatus(str(self.record.status))


def hardware_class(device: torch.device, num_threads: int, world_size: int = 1) -> str:
    """Wall-clock results compare only within one hardware class."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} x{world_size}"
    threads = f"{num_threads} thread{'s' if num_threads > 1 else ''}"
    processes = f" x{world_size}" if world_size > 1 else ""
    return f"cpu {cpu_model()} ({threads}){processes}"


# What a checkpoint keeps of the record besides its eval points (`Recorder.state`).
_RESUMED_FIELDS = (
    "steps",
    "tokens",
    "final_metric",
    "best_metric",
    "time_to_target_s",
    "steps_to_target",
    "tokens_to_target",
)


class Recorder:
    """Builds one trial's record as the trial runs: what ran from its resolved trial and its
    workload (None when the workload or submission could not be loaded), then eval points,
    memory, the clock, and how it ended."""

    def __init__(
        self,
        trial: ResolvedTrial,
        device: torch.device,
        attempts: int,
        workload: Workload | None = None,
    ) -> None:
        spec = self.spec = trial.spec
        self.device = device
        self.train_losses: list[float] = []  # every step's global mean training loss
        self.clock = Clock.for_device(device)
        self.evals: list[EvalRecord] = []
        self.reached_target = False
        self._target: Any = None
        self._tokens_per_step = 0
        self._eval_points: list[tuple[int, float]] = []
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        self.trial = TrialRecord(
            trial_id=trial.trial_id,
            workload=spec.workload,
            scale=spec.scale,
            submission=trial.submission_name,
            hparams_json=spec.hparams_json,
            seed=spec.seed,
            ruleset=spec.ruleset,
            ruleset_json=spec.ruleset_json,
            study=spec.study,
            trial_index=spec.trial_index,
            num_threads=spec.num_threads,
            hardware_class=hardware_class(device, spec.num_threads, spec.world_size),
            steps=0,
            tokens=0,
            attempts=attempts,
            restarts=0,
            memory_cap_bytes=spec.memory_cap_bytes,
            provenance=Provenance(**collect_provenance(name, spec.command_line or None)),
        )
        if workload is not None:
            self._describe(trial, workload)

    def _describe(self, trial: ResolvedTrial, workload: Workload) -> None:
        config, record = workload.config, self.trial
        self._target = config.target
        self._tokens_per_step = config.tokens_per_step
        record.workload_version = trial.workload_version
        record.submission_hash = trial.submission_hash
        record.precision = str(workload.precision(self.device))
        record.throughput_unit = str(config.throughput_unit)
        record.target_metric = config.target.metric
        record.target_value = config.target.value
        record.target_direction = str(config.target.direction)
        record.target_seeds = config.target.seeds
        record.target_gate_margin = config.target.gate_margin
        record.batch_size = config.batch_size

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the record (see `load_state`)."""
        return {
            "train_losses": list(self.train_losses),
            "evals": [_without_provenance(e) for e in self.evals],
            "reached_target": self.reached_target,
            "eval_points": list(self._eval_points),
            "row": {name: getattr(self.trial, name) for name in _RESUMED_FIELDS},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.train_losses = list(state["train_losses"])
        self.evals = [EvalRecord(**row) for row in state["evals"]]
        self.reached_target = bool(state["reached_target"])
        self._eval_points = [tuple(p) for p in state["eval_points"]]
        for name, value in state["row"].items():
            setattr(self.trial, name, value)

    @property
    def last_metrics(self) -> dict[str, float]:
        """The metrics of the last eval point."""
        if not self._eval_points:
            return {}
        index = len(self._eval_points) - 1
        return {
            str(e.metric): float(e.value)
            for e in self.evals
            if e.eval_index == index and e.value is not None
        }

    @property
    def last_eval_steps(self) -> int | None:
        """The step count of the last eval point (None before the first)."""
        return self._eval_points[-1][0] if self._eval_points else None

    def eval_point(self, steps: int, metrics: dict[str, float]) -> None:
        tokens = steps * self._tokens_per_step
        index = len(self._eval_points)
        train_s = self.clock.train_s
        self._eval_points.append((steps, train_s))
        for name, value in sorted(metrics.items()):
            self.evals.append(
                EvalRecord(self.trial.trial_id, index, steps, tokens, train_s, name, value)
            )
        value, record = metrics[self._target.metric], self.trial
        best = record.best_metric
        record.steps, record.tokens, record.final_metric = steps, tokens, value
        record.best_metric = value if best is None else self._target.better(best, value)
        if not self.reached_target and self._target.is_met(value):
            self.reached_target = True
            record.time_to_target_s, record.steps_to_target = train_s, steps
            record.tokens_to_target = tokens

    def finish(self, status: TrialStatus) -> None:
        """Ends a trial that trained (to its target or budget, or diverged)."""
        self.trial.status = str(status)
        (first_steps, first_s), (last_steps, last_s) = self._eval_points[0], self._eval_points[-1]
        if last_s > first_s:  # steady state: after the first eval interval
            rate = (last_steps - first_steps) / (last_s - first_s)
        else:
            rate = last_steps / last_s if last_s > 0 else float("nan")
        self.trial.throughput_per_s = rate * self._tokens_per_step

    def memory(
        self, model: torch.nn.Module, groups: ParamGroups, stepper: Stepper, peak: tuple[int, str]
    ) -> None:
        params, record = list(groups.params), self.trial
        not_state = params + list(model.buffers())  # e.g. BatchNorm statistics
        record.params_bytes = memory.params_bytes(params)
        record.grads_bytes = memory.grads_bytes(params)
        record.optimizer_state_bytes = memory.optimizer_state_bytes(
            stepper.optimizer_state, not_state
        )
        static = record.params_bytes + record.grads_bytes + record.optimizer_state_bytes
        record.peak_bytes, record.peak_source = peak
        record.num_params = sum(p.numel() for p in params)
        record.activations_bytes = max(0, record.peak_bytes - static)

    def check_memory_cap(self) -> None:
        """Marks the trial `over_budget` when its measured peak exceeds its memory cap."""
        cap, peak = self.spec.memory_cap_bytes, self.trial.peak_bytes
        if cap is not None and peak is not None and peak > cap:
            self.trial.status = str(TrialStatus.OVER_BUDGET)

    def fail(self, error: str, status: TrialStatus = TrialStatus.FAILED) -> None:
        self.trial.status, self.trial.error = str(status), error

    def outcome(self) -> TrialOutcome:
        record = self.trial
        with contextlib.suppress(Exception):  # a trial that failed on its device may not sync
            self.clock.settle()
        record.train_time_s = self.clock.train_s
        record.compile_time_s = self.clock.compile_s
        record.eval_time_s = self.clock.eval_s
        evals = [dataclasses.replace(e, provenance=record.provenance).to_row() for e in self.evals]
        return TrialOutcome(record=record, evals=evals, train_losses=self.train_losses)


def _without_provenance(row: EvalRecord) -> dict[str, Any]:
    values = dataclasses.asdict(row)
    del values["provenance"]
    return values


def failed_outcome(
    spec: TrialSpec,
    error: str,
    build_workload: BuildWorkload,
    status: TrialStatus = TrialStatus.FAILED,
    attempts: int = 1,
    evals: Sequence[Mapping[str, Any]] = (),
) -> TrialOutcome:
    """The record of a trial that ended outside `run_trial`: its process killed or crashed,
    its SLURM job cancelled or out of time, or stopped early by the search's scheduler. `evals`
    are the eval points it reported (`LiveTrial.read_progress`), kept in the record."""
    trial, workload = ResolvedTrial.unresolved(spec), None
    try:
        submission = load_submission(
            spec.submission, allow_self_tuning=spec.ruleset == RulesetName.SELF
        )
        workload = build_workload(spec.workload, spec.scale, Path(spec.data_dir))
        trial = ResolvedTrial(spec, workload.version, submission.name, submission.source_hash)
    except Exception as exc:  # describing is best effort: the failure itself is what matters
        trial, workload = ResolvedTrial.unresolved(spec), None
        error += f"\n(while describing the trial: {exc})"
    recorder = Recorder(trial, torch.device(spec.device), attempts, workload)
    if workload is not None:
        for point in evals:
            recorder.clock.train_s = point["train_time_s"]
            recorder.eval_point(point["step"], dict(point["metrics"]))
    recorder.fail(error, status)
    return recorder.outcome()
