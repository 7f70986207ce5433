"""One trial, one process: run trials in fresh child processes and store what they return.

`execute_trial` is what runs inside the trial's process (a child here, a Ray worker, or a SLURM
job): it runs the trial and writes its rows to the results store. `run_isolated` runs many specs
with a bounded number of children; a child that dies without writing (killed, out of memory,
segfault) is recorded by the parent as `failed` with its exit code, and the others go on.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from harness.results import ResultsStore
from harness.trial import TrialSpec
from harness.workload import BuildWorkload

__all__ = ["TrialSummary", "execute_trial", "run_isolated", "start_isolated", "summarize"]

TrialSummary = dict[str, Any]
# Imported once by the fork server, with the module of the workload builder the caller passes;
# torch._dynamo is what torch.optim imports on its first step. JAX and optax (about 1.8 s more
# per server) only where an optax submission may run.
_PRELOAD = ["torch", "torch._dynamo", "harness.runner"]
_JAX_PRELOAD = ["jax", "optax"]
_SUMMARY_KEYS = (
    "trial_id",
    "workload",
    "submission",
    "study",
    "trial_index",
    "status",
    "time_to_target_s",
    "steps_to_target",
    "best_metric",
    "train_time_s",
    "wall_time_s",
)


def summarize(row: Mapping[str, Any]) -> TrialSummary:
    return {key: row.get(key) for key in _SUMMARY_KEYS}


def execute_trial(
    spec: TrialSpec,
    results_root: str,
    build_workload: BuildWorkload,
    checkpoints: bool = False,
    attempt: int = 1,
) -> TrialSummary:
    """Runs `spec` in this process and writes its trial and eval rows to `results_root`.

    With `checkpoints`, the trial checkpoints into the store's live folder and resumes from what a
    killed or preempted run of it left there (`harness.checkpoint`); the folder goes once the rows
    are stored.
    """
    from harness.runner import run_trial

    store = ResultsStore(results_root)
    outcome = run_trial(spec, build_workload, store.live_root if checkpoints else None, attempt)
    store.write_trial(outcome.row, outcome.evals)
    if checkpoints:
        store.remove_live(outcome.row["trial_id"])
    return summarize(outcome.row)


def _child(
    spec_dict: dict[str, Any],
    results_root: str,
    build_workload: BuildWorkload,
    conn: Connection | None,
    checkpoints: bool = False,
    attempt: int = 1,
) -> None:
    spec = TrialSpec.from_dict(spec_dict)
    summary = execute_trial(spec, results_root, build_workload, checkpoints, attempt)
    if conn is not None:
        conn.send(summary)
        conn.close()


def _forkserver(build_workload: BuildWorkload, preload_jax: bool = True) -> Any:
    """This process's fork server context. What it preloads is fixed when it first starts."""
    ctx = mp.get_context("forkserver")
    jax = _JAX_PRELOAD if preload_jax else []
    ctx.set_forkserver_preload([*_PRELOAD, build_workload.__module__, *jax])
    return ctx


def start_isolated(
    spec: TrialSpec,
    results_root: str,
    build_workload: BuildWorkload,
    attempt: int,
    preload_jax: bool,
) -> Any:
    """Starts `spec` in a fresh process (see `run_isolated`) that checkpoints as it goes; returns
    the started `multiprocessing.Process`. Its exit code says how it ended: 0 once its rows are
    stored, negative when a signal killed it. Without `preload_jax` the fork server is spared
    JAX's import, and a trial that needs it imports it itself (inside its wall time)."""
    proc = _forkserver(build_workload, preload_jax).Process(
        target=_child, args=(spec.to_dict(), results_root, build_workload, None, True, attempt)
    )
    proc.start()
    return proc


def run_isolated(
    specs: Sequence[TrialSpec],
    results_root: str,
    build_workload: BuildWorkload,
    max_parallel: int = 1,
    on_done: Callable[[TrialSummary], None] | None = None,
) -> list[TrialSummary]:
    """Runs each spec in its own process, at most `max_parallel` at once; returns the summaries.

    Children fork from a server that has already imported torch, JAX and the runner (and nothing
    else: no model, no thread pool), so a trial's process starts in milliseconds instead of the
    ~6 s those imports take, and still shares no state with any other trial.
    """
    ctx = _forkserver(build_workload)
    pending = list(specs)
    running: dict[int, tuple[Any, TrialSpec, Connection]] = {}
    summaries: list[TrialSummary] = []
    while pending or running:
        while pending and len(running) < max_parallel:
            spec = pending.pop(0)
            receiver, sender = ctx.Pipe(duplex=False)
            args = (spec.to_dict(), results_root, build_workload, sender)
            proc = ctx.Process(target=_child, args=args)
            proc.start()
            sender.close()
            running[proc.sentinel] = (proc, spec, receiver)
        for sentinel in multiprocessing.connection.wait(list(running)):
            proc, spec, receiver = running.pop(sentinel)  # type: ignore[arg-type]
            summary = _collect(proc, spec, receiver, results_root, build_workload)
            summaries.append(summary)
            if on_done is not None:
                on_done(summary)
    return summaries


def _collect(
    proc: Any,
    spec: TrialSpec,
    receiver: Connection,
    results_root: str,
    build_workload: BuildWorkload,
) -> TrialSummary:
    proc.join()
    if receiver.poll():
        try:
            summary: TrialSummary = receiver.recv()
            return summary
        except EOFError:
            pass
    from harness.recorder import failed_outcome

    error = f"trial process died with exit code {proc.exitcode}"
    outcome = failed_outcome(spec, error, build_workload)
    ResultsStore(results_root).write_trial(outcome.row, outcome.evals)
    return summarize(outcome.row)
