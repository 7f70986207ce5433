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
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from harness import checkpoint, memory, parallel
from harness.checkpoint import TrialCheckpoint
from harness.clock import Clock
from harness.contract import Hyperparameters, WorkloadInfo
from harness.live import LiveTrial
from harness.needs_cuda import needs_cuda
from harness.parallel import Collective, GradientPass
from harness.recorder import Recorder, TrialOutcome, failed_outcome
from harness.stepper import make_stepper
from harness.stepping import Stepper, TrainingComplete, TrialContext
from harness.submission import load_submission
from harness.trial import ResolvedTrial, RulesetName, TrialSpec, TrialStatus
from harness.workload import BuildWorkload, Workload

__all__ = ["run_rank", "run_trial"]


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
    record: Recorder | None = None
    try:
        submission = load_submission(
            spec.submission, allow_self_tuning=spec.ruleset == RulesetName.SELF
        )
        workload = build_workload(spec.workload, spec.scale, Path(spec.data_dir))
        trial = ResolvedTrial(spec, workload.version, submission.name, submission.source_hash)
        record = Recorder(trial, device, attempt, workload)
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
        record = record or Recorder(ResolvedTrial.unresolved(spec), device, attempt)
        capped_oom = isinstance(exc, torch.OutOfMemoryError) and spec.memory_cap_bytes is not None
        cuda_line = needs_cuda(exc, Path(spec.submission), device.type)  # first, on one line
        error = "\n\n".join(filter(None, [cuda_line, traceback.format_exc()]))
        record.fail(error, TrialStatus.OVER_BUDGET if capped_oom else TrialStatus.FAILED)
    record.trial.wall_time_s = time.perf_counter() - wall_start
    return record.outcome()


def _cap_device_memory(cap_bytes: int | None, device: torch.device, floor_bytes: int) -> None:
    """On CUDA, limits torch's caching allocator to the cap above what is already allocated (the
    staged data), so an allocation past it raises `torch.OutOfMemoryError`. The limit bounds
    reserved memory, which is at least the allocated peak the cap is checked against. On other
    devices the cap is only checked after training (`Recorder.check_memory_cap`)."""
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
    record: Recorder,
    collective: Collective,
    start_step: int,
    live: LiveTrial | None,
) -> None:
    """The step loop: timed steps, evals on the workload's cadence, stop at target / budget /
    divergence, or when the submission declares training complete (after one more eval).
    Rank 0 evaluates, checkpoints and decides; every rank follows its decision."""
    clock, config, device = record.clock, workload.config, _model_device(model)
    losses: list[torch.Tensor] = []  # global mean losses since the last eval, fetched at evals
    ending: TrialStatus | None = None  # decided at an eval: diverged, or stopped at the target
    for step in range(start_step, info.max_steps):
        with clock.timed():
            is_complete = _step(stepper, workload, model, step, losses)
        done_steps = step if is_complete else step + 1
        out_of_time = collective.from_rank0(clock.past(info.max_time_s), device)
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
        if collective.rank == 0:
            ending = _eval_point(workload, model, stepper, losses, done_steps, record)
        stop = collective.from_rank0(ending is not None or out_of_time or is_complete, device)
        if live is not None and collective.rank == 0:
            if not stop:  # a finished trial's rows are its record; no resume needed
                _save_checkpoint(live, done_steps, model, stepper, workload, record)
            live.append_progress(done_steps, clock.train_s, record.last_metrics)
        if stop:
            break
    clock.settle()  # the last span's end, read once
    if collective.rank == 0:
        reached = TrialStatus.TARGET_REACHED if record.reached_target else None
        record.finish(ending or reached or TrialStatus.BUDGET_EXHAUSTED)


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
    record: Recorder,
) -> TrialStatus | None:
    """Evaluates, records the point and the interval's losses; returns how the trial ends if it
    must stop here (diverged, or at its target), else None."""
    metrics = _evaluate(workload, model, record.clock)
    interval = torch.stack(losses).float().cpu() if losses else torch.zeros(0)
    record.train_losses += interval.tolist()
    if losses:  # none when training was declared complete right at the start
        metrics["train_loss"] = float(interval.mean())  # the mean since the last eval
    losses.clear()
    record.eval_point(done_steps, metrics)
    stepper.observe_eval(done_steps, metrics)
    if not bool(torch.isfinite(interval).all()) or not all(map(math.isfinite, metrics.values())):
        return TrialStatus.DIVERGED
    if record.reached_target and record.spec.stop_at_target:
        return TrialStatus.TARGET_REACHED
    return None


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
        outcome.record.status = str(TrialStatus.FAILED)
        outcome.record.error = f"ranks {failed_ranks} exited with an error"
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
    record: Recorder,
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
            restarts=record.trial.restarts or 0,
        ),
    )


def _resume(
    live: LiveTrial, model: torch.nn.Module, stepper: Stepper, workload: Workload, record: Recorder
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
    record.trial.restarts = saved.restarts + 1
    return saved.step


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
