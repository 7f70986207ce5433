"""The trial runner: setup, compile warm-up, the timed step loop, evals, and the trial's record.

One call of `run_trial` is one trial; callers run it in a fresh process (`harness.isolation`, a
Ray worker, a SLURM job). Every failure inside becomes data here, once: status `failed` with the
traceback, or `diverged` on a non-finite loss or metric. A trial with a memory cap whose measured
peak exceeds it, or that runs out of GPU memory under it, ends `over_budget`, keeping what it
reached. The clock lives in `harness.clock`.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from harness import checkpoint, memory, parallel
from harness.checkpoint import TrialCheckpoint
from harness.clock import Clock
from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo
from harness.live import LiveTrial
from harness.needs_cuda import needs_cuda
from harness.parallel import Collective, GradientPass
from harness.provenance import collect_provenance, cpu_model
from harness.results import PROVENANCE_FIELDS, TRIALS_SCHEMA
from harness.stepper import make_stepper
from harness.stepping import Stepper, TrainingComplete, TrialContext
from harness.submission import load_submission
from harness.trial import ResolvedTrial, TrialSpec, TrialStatus
from harness.workload import BuildWorkload, Workload

__all__ = ["TrialOutcome", "failed_outcome", "hardware_class", "run_rank", "run_trial"]


@dataclass(slots=True)
class TrialOutcome:
    """A finished trial: one `trials` row and its `evals` rows (schemas in `harness.results`)."""

    row: dict[str, Any]
    evals: list[dict[str, Any]] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)  # per step; not stored

    @property
    def status(self) -> TrialStatus:
        return TrialStatus(self.row["status"])


def hardware_class(device: torch.device, num_threads: int, world_size: int = 1) -> str:
    """Wall-clock results compare only within one hardware class."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} x{world_size}"
    threads = f"{num_threads} thread{'s' if num_threads > 1 else ''}"
    processes = f" x{world_size}" if world_size > 1 else ""
    return f"cpu {cpu_model()} ({threads}){processes}"


def run_trial(
    spec: TrialSpec,
    build_workload: BuildWorkload,
    live_root: str | Path | None = None,
    attempt: int = 1,
) -> TrialOutcome:
    """Runs one trial to its target, budget, divergence or error and returns its record.

    `build_workload` makes the workload `spec` names (`workloads.get_workload`).
    With `spec.world_size` > 1 this process is rank 0 and starts ranks 1.. as child processes
    (`harness.parallel`); rank 0's record is the trial's. With `live_root`, the trial checkpoints
    at every eval point into `live_root/<trial_id>/` and resumes from a checkpoint it finds there
    (`harness.checkpoint`). `attempt` counts the launcher's runs of this trial (retries).
    """
    if spec.world_size == 1:
        return run_rank(spec, build_workload, Collective(), live_root, attempt)
    return _run_data_parallel(spec, build_workload, live_root, attempt)


def run_rank(
    spec: TrialSpec,
    build_workload: BuildWorkload,
    collective: Collective,
    live_root: str | Path | None = None,
    attempt: int = 1,
) -> TrialOutcome:
    """One process's part of a trial: setup, warm-up, the step loop, the record. With
    `collective.world_size` > 1 the process group must be initialised already (rank 0 records)."""
    wall_start = time.perf_counter()
    torch.set_num_threads(spec.num_threads)
    device = _rank_device(spec.device, collective.rank)
    record: _Record | None = None
    try:
        submission = load_submission(spec.submission, allow_self_tuning=spec.ruleset == "self")
        workload = build_workload(spec.workload, spec.scale, Path(spec.data_dir))
        trial = ResolvedTrial(spec, workload.version, submission.name, submission.source_hash)
        record = _Record(trial, device, attempt, workload)
        hp = Hyperparameters(spec.hparams)
        submission.search_space.validate_point(hp)
        workload.setup(device, spec.seed)
        peak = memory.PeakMemory(device)  # after data staging: the peak is the model's and steps'
        _cap_device_memory(spec.memory_cap_bytes, device, peak.floor_bytes)
        model = workload.build_model(spec.seed)
        groups = workload.param_groups(model)
        info = workload.info(str(device), spec.max_steps, spec.max_time_s, spec.memory_cap_bytes)
        grads = GradientPass(model, workload.loss, workload.config.micro_batch_size, collective)
        context = TrialContext(model, workload, spec.seed, collective.world_size, record.clock)
        stepper = make_stepper(submission, groups, hp, info, grads.loss, grads, context)
        _compile_warmup(stepper, model, workload, record.clock)
        live = LiveTrial.under(live_root, trial.trial_id) if live_root else None
        start_step = _resume(live, model, stepper, workload, record) if live else 0
        peak.reset()  # the peak of the training steps, not of one-time warm-up work
        _train(workload, model, stepper, info, spec, record, collective, start_step, live)
        record.memory(model, groups, stepper, peak.read())
        record.check_memory_cap()
    except Exception as exc:  # the trial boundary: the one place where failures become data
        record = record or _Record(ResolvedTrial.unresolved(spec), device, attempt)
        capped_oom = isinstance(exc, torch.OutOfMemoryError) and spec.memory_cap_bytes is not None
        cuda_line = needs_cuda(exc, Path(spec.submission), device.type)  # first, on one line
        error = "\n\n".join(filter(None, [cuda_line, traceback.format_exc()]))
        record.fail(error, TrialStatus.OVER_BUDGET if capped_oom else TrialStatus.FAILED)
    record.row["wall_time_s"] = time.perf_counter() - wall_start
    return record.outcome()


def _cap_device_memory(cap_bytes: int | None, device: torch.device, floor_bytes: int) -> None:
    """On CUDA, limits torch's caching allocator to the cap above what is already allocated (the
    staged data), so an allocation past it raises `torch.OutOfMemoryError`. The limit bounds
    reserved memory, which is at least the allocated peak the cap is checked against. On other
    devices the cap is only checked after training (`_Record.check_memory_cap`)."""
    if cap_bytes is None or device.type != "cuda":
        return
    total_bytes = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(
        min(1.0, (floor_bytes + cap_bytes) / total_bytes), device
    )


def _train(
    workload: Workload,
    model: torch.nn.Module,
    stepper: Stepper,
    info: WorkloadInfo,
    spec: TrialSpec,
    record: _Record,
    collective: Collective,
    start_step: int,
    live: LiveTrial | None,
) -> None:
    """The step loop: timed steps, evals on the workload's cadence, stop at target / budget /
    divergence, or when the submission declares training complete (after one more eval).
    Rank 0 evaluates, checkpoints and decides; every rank follows its decision."""
    clock, config, device = record.clock, workload.config, _model_device(model)
    losses: list[torch.Tensor] = []  # global mean losses since the last eval, fetched at evals
    for step in range(start_step, info.max_steps):
        with clock.timed():
            is_complete = _step(stepper, workload, model, step, losses)
        done_steps = step if is_complete else step + 1
        out_of_time = collective.from_rank0(clock.train_s >= info.max_time_s, device)
        if is_complete and record.last_eval_steps == done_steps:
            break  # evaluated at this very step already (level 3, so a single process)
        if not (
            config.eval_due(done_steps, info.max_steps)
            or done_steps == info.max_steps
            or out_of_time
            or is_complete
        ):
            continue
        with clock.timed():
            stepper.prepare_for_eval()
        stop = collective.rank == 0 and _eval_point(
            workload, model, stepper, losses, done_steps, record
        )
        stop = collective.from_rank0(stop or out_of_time or is_complete, device)
        if live is not None and collective.rank == 0:
            if not stop:  # a finished trial's rows are its record; no resume needed
                _save_checkpoint(live, done_steps, model, stepper, workload, record)
            live.append_progress(done_steps, clock.train_s, record.last_metrics)
        if stop:
            break
    if collective.rank == 0 and "status" not in record.row:
        reached = record.reached_target
        record.finish(TrialStatus.TARGET_REACHED if reached else TrialStatus.BUDGET_EXHAUSTED)


def _step(
    stepper: Stepper,
    workload: Workload,
    model: torch.nn.Module,
    step: int,
    losses: list[torch.Tensor],
) -> bool:
    """Training step `step` (the caller times it); True if the submission declared training
    complete instead of taking it."""
    try:
        losses.append(stepper.step(workload.get_batch(step), step))
    except TrainingComplete:
        return True
    workload.after_step(model)
    return False


def _eval_point(
    workload: Workload,
    model: torch.nn.Module,
    stepper: Stepper,
    losses: list[torch.Tensor],
    done_steps: int,
    record: _Record,
) -> bool:
    """Evaluates, records the point and the interval's losses; True when the trial must stop."""
    metrics = _evaluate(workload, model, record.clock)
    interval = torch.stack(losses).float().cpu() if losses else torch.zeros(0)
    record.train_losses += interval.tolist()
    if losses:  # none when training was declared complete right at the start
        metrics["train_loss"] = float(interval.mean())  # the mean since the last eval
    losses.clear()
    record.eval_point(done_steps, metrics)
    stepper.observe_eval(done_steps, metrics)
    if not bool(torch.isfinite(interval).all()) or not all(map(math.isfinite, metrics.values())):
        record.finish(TrialStatus.DIVERGED)
        return True
    return record.reached_target and record.spec.stop_at_target


def _run_data_parallel(
    spec: TrialSpec, build_workload: BuildWorkload, live_root: str | Path | None, attempt: int
) -> TrialOutcome:
    """Rank 0 here, ranks 1.. in fresh child processes, meeting over a loopback rendezvous."""
    port = parallel.free_port()
    ctx = mp.get_context("spawn")
    live = str(live_root) if live_root else None
    ranks = [
        ctx.Process(
            target=_rank_process,
            args=(spec.to_dict(), build_workload, rank, port, live),
            daemon=True,
        )
        for rank in range(1, spec.world_size)
    ]
    for process in ranks:
        process.start()
    try:
        parallel.init_process_group(0, spec.world_size, port, _rank_device(spec.device, 0))
        outcome = run_rank(spec, build_workload, Collective(0, spec.world_size), live_root, attempt)
    except Exception:
        outcome = failed_outcome(spec, traceback.format_exc(), build_workload)
    finally:
        if dist.is_initialized():
            parallel.leave_process_group()
        for process in ranks:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()  # by its handle, i.e. its pid
                process.join()
    failed_ranks = [r for r, p in enumerate(ranks, start=1) if p.exitcode != 0]
    if failed_ranks and outcome.status not in (TrialStatus.FAILED, TrialStatus.OVER_BUDGET):
        outcome.row.update(
            status=str(TrialStatus.FAILED), error=f"ranks {failed_ranks} exited with an error"
        )
    return outcome


def _rank_process(
    spec_dict: dict[str, Any],
    build_workload: BuildWorkload,
    rank: int,
    port: int,
    live_root: str | None,
) -> None:
    """Rank `rank` (>= 1) of a data-parallel trial; its record is dropped, its failure is not."""
    spec = TrialSpec.from_dict(spec_dict)
    torch.set_num_threads(spec.num_threads)
    parallel.init_process_group(rank, spec.world_size, port, _rank_device(spec.device, rank))
    try:
        outcome = run_rank(spec, build_workload, Collective(rank, spec.world_size), live_root)
    finally:
        parallel.leave_process_group()
    if outcome.row.get("error"):
        print(f"rank {rank}: {outcome.row['error']}", file=sys.stderr)
        sys.exit(1)


def _rank_device(device: str, rank: int) -> torch.device:
    """Rank r of a data-parallel GPU trial uses the r-th visible GPU, modulo the visible count (a
    SLURM task sees only its own); CPU ranks all use the CPU."""
    base = torch.device(device)
    if base.type == "cuda" and rank > 0:
        return torch.device("cuda", rank % torch.cuda.device_count())
    return base


def _evaluate(workload: Workload, model: torch.nn.Module, clock: Clock) -> dict[str, float]:
    with clock.evaluating():
        model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in workload.evaluate(model).items()}
        model.train()
    return metrics


def _compile_warmup(
    stepper: Stepper, model: torch.nn.Module, workload: Workload, clock: Clock
) -> None:
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


def _save_checkpoint(
    live: LiveTrial,
    step: int,
    model: torch.nn.Module,
    stepper: Stepper,
    workload: Workload,
    record: _Record,
) -> None:
    """Checkpoints the trial after `step` steps (untimed); skipped when the submission's state
    cannot be taken (a full-control submission without `state_dict`): it would restart afresh."""
    optimizer = stepper.snapshot()
    if optimizer is None:
        return
    clock = record.clock
    checkpoint.save_checkpoint(
        live,
        TrialCheckpoint(
            step=step,
            model=model.state_dict(),
            optimizer=optimizer,
            workload=workload.state_dict(),
            rng=checkpoint.rng_state(_model_device(model)),
            record=record.state(),
            clock={"train_s": clock.train_s, "compile_s": clock.compile_s, "eval_s": clock.eval_s},
            restarts=record.row["restarts"],
        ),
    )


def _resume(
    live: LiveTrial, model: torch.nn.Module, stepper: Stepper, workload: Workload, record: _Record
) -> int:
    """Restores the trial's last checkpoint, if any; returns the step to continue from."""
    saved = checkpoint.load_checkpoint(live)
    if saved is None:
        return 0
    device = _model_device(model)
    model.load_state_dict(saved.model)
    stepper.restore(saved.optimizer)
    workload.load_state_dict(saved.workload)
    checkpoint.restore_rng(saved.rng, device)
    record.load_state(saved.record)
    clock = record.clock
    clock.train_s, clock.eval_s = saved.clock["train_s"], saved.clock["eval_s"]
    clock.compile_s += saved.clock["compile_s"]  # this process compiled again: both count
    record.row["restarts"] = saved.restarts + 1
    return saved.step


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


class _Record:
    """Accumulates a trial's row and eval rows as the trial runs (all untimed)."""

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
        self.evals: list[dict[str, Any]] = []
        self.reached_target = False
        self._target: Any = None
        self._tokens_per_step = 0
        self._eval_points: list[tuple[int, float]] = []
        self.row: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "workload": spec.workload,
            "scale": spec.scale,
            "submission": trial.submission_name,
            "hparams_json": spec.hparams_json,
            "seed": spec.seed,
            "ruleset": spec.ruleset,
            "ruleset_json": spec.ruleset_json,
            "study": spec.study,
            "trial_index": spec.trial_index,
            "num_threads": spec.num_threads,
            "hardware_class": hardware_class(device, spec.num_threads, spec.world_size),
            "steps": 0,
            "tokens": 0,
            "error": None,
            "attempts": attempts,
            "restarts": 0,
            "memory_cap_bytes": spec.memory_cap_bytes,
        }
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        self.row.update(collect_provenance(name, spec.command_line or None))
        if workload is not None:
            self._describe(trial, workload)

    def _describe(self, trial: ResolvedTrial, workload: Workload) -> None:
        config = workload.config
        self._target = config.target
        self._tokens_per_step = config.tokens_per_step
        self.row.update(
            workload_version=trial.workload_version,
            submission_hash=trial.submission_hash,
            precision=workload.precision(self.device),
            throughput_unit=config.throughput_unit,
            target_metric=config.target.metric,
            target_value=config.target.value,
            target_direction=str(config.target.direction),
            target_seeds=config.target.seeds,
            target_gate_margin=config.target.gate_margin,
            batch_size=config.batch_size,
        )

    _RESUMED_FIELDS = (
        "steps",
        "tokens",
        "final_metric",
        "best_metric",
        "time_to_target_s",
        "steps_to_target",
        "tokens_to_target",
    )

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the record (see `load_state`)."""
        return {
            "train_losses": list(self.train_losses),
            "evals": [dict(r) for r in self.evals],
            "reached_target": self.reached_target,
            "eval_points": list(self._eval_points),
            "row": {name: self.row.get(name) for name in self._RESUMED_FIELDS},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.train_losses = list(state["train_losses"])
        self.evals = [dict(r) for r in state["evals"]]
        self.reached_target = bool(state["reached_target"])
        self._eval_points = [tuple(p) for p in state["eval_points"]]
        self.row.update(state["row"])

    @property
    def last_metrics(self) -> dict[str, float]:
        """The metrics of the last eval point."""
        if not self._eval_points:
            return {}
        index = len(self._eval_points) - 1
        return {r["metric"]: r["value"] for r in self.evals if r["eval_index"] == index}

    @property
    def last_eval_steps(self) -> int | None:
        """The step count of the last eval point (None before the first)."""
        return self._eval_points[-1][0] if self._eval_points else None

    def eval_point(self, steps: int, metrics: dict[str, float]) -> None:
        tokens = steps * self._tokens_per_step
        index = len(self._eval_points)
        self._eval_points.append((steps, self.clock.train_s))
        for name, value in sorted(metrics.items()):
            self.evals.append(
                {
                    "trial_id": self.row["trial_id"],
                    "eval_index": index,
                    "step": steps,
                    "tokens": tokens,
                    "train_time_s": self.clock.train_s,
                    "metric": name,
                    "value": value,
                }
            )
        value = metrics[self._target.metric]
        best = self.row.get("best_metric")
        self.row.update(
            steps=steps,
            tokens=tokens,
            final_metric=value,
            best_metric=value if best is None else self._target.better(best, value),
        )
        if not self.reached_target and self._target.is_met(value):
            self.reached_target = True
            self.row.update(
                time_to_target_s=self.clock.train_s, steps_to_target=steps, tokens_to_target=tokens
            )

    def finish(self, status: TrialStatus) -> None:
        self.row["status"] = str(status)
        (first_steps, first_s), (last_steps, last_s) = self._eval_points[0], self._eval_points[-1]
        if last_s > first_s:  # steady state: after the first eval interval
            rate = (last_steps - first_steps) / (last_s - first_s)
        else:
            rate = last_steps / last_s if last_s > 0 else float("nan")
        self.row["throughput_per_s"] = rate * self._tokens_per_step

    def memory(
        self, model: torch.nn.Module, groups: ParamGroups, stepper: Stepper, peak: tuple[int, str]
    ) -> None:
        params = list(groups.params)
        not_state = params + list(model.buffers())  # e.g. BatchNorm statistics
        static = {
            "params_bytes": memory.params_bytes(params),
            "grads_bytes": memory.grads_bytes(params),
            "optimizer_state_bytes": memory.optimizer_state_bytes(
                stepper.optimizer_state, not_state
            ),
        }
        peak_bytes, source = peak
        self.row.update(
            static,
            peak_bytes=peak_bytes,
            peak_source=source,
            num_params=sum(p.numel() for p in params),
            activations_bytes=max(0, peak_bytes - sum(static.values())),
        )

    def check_memory_cap(self) -> None:
        """Marks the trial `over_budget` when its measured peak exceeds its memory cap."""
        cap = self.spec.memory_cap_bytes
        if cap is not None and self.row["peak_bytes"] > cap:
            self.row["status"] = str(TrialStatus.OVER_BUDGET)

    def fail(self, error: str, status: TrialStatus = TrialStatus.FAILED) -> None:
        self.row.update(status=str(status), error=error)

    def outcome(self) -> TrialOutcome:
        self.row.update(
            train_time_s=self.clock.train_s,
            compile_time_s=self.clock.compile_s,
            eval_time_s=self.clock.eval_s,
        )
        provenance = {f.name: self.row[f.name] for f in PROVENANCE_FIELDS}
        evals = [{**row, **provenance} for row in self.evals]
        full = {name: self.row.get(name) for name in TRIALS_SCHEMA.names}
        return TrialOutcome(row=full, evals=evals, train_losses=self.train_losses)


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
        submission = load_submission(spec.submission, allow_self_tuning=spec.ruleset == "self")
        workload = build_workload(spec.workload, spec.scale, Path(spec.data_dir))
        trial = ResolvedTrial(spec, workload.version, submission.name, submission.source_hash)
    except Exception as exc:  # describing is best effort: the failure itself is what matters
        trial, workload = ResolvedTrial.unresolved(spec), None
        error += f"\n(while describing the trial: {exc})"
    record = _Record(trial, torch.device(spec.device), attempts, workload)
    if workload is not None:
        for point in evals:
            record.clock.train_s = point["train_time_s"]
            record.eval_point(point["step"], dict(point["metrics"]))
    record.fail(error, status)
    return record.outcome()
