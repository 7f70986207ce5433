"""One trial, one process: run trials in fresh child processes and store what they return.

`execute_trial` is what runs inside the trial's process (a child here, a Ray worker, or a SLURM
job): it runs the trial and writes its rows to the results store. `run_isolated` runs many specs
with a bounded number of children; a child that dies without writing (killed, out of memory,
segfault) is recorded by the parent as `failed` with its exit code, and the others go on.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from harness.results import ResultsStore
from harness.trial import TrialSpec

__all__ = ["TrialSummary", "execute_trial", "run_isolated"]

TrialSummary = dict[str, Any]
# Imported once by the fork server; torch._dynamo is what torch.optim imports on its first step.
_PRELOAD = ["torch", "torch._dynamo", "jax", "optax", "harness.runner", "workloads"]
_SUMMARY_KEYS = (
    "trial_id", "workload", "submission", "study", "trial_index", "status", "time_to_target_s",
    "steps_to_target", "best_metric", "train_time_s", "wall_time_s",
)  # fmt: skip


def summarize(row: dict[str, Any]) -> TrialSummary:
    return {key: row.get(key) for key in _SUMMARY_KEYS}


def execute_trial(spec: TrialSpec, results_root: str) -> TrialSummary:
    """Runs `spec` in this process and writes its trial and eval rows to `results_root`."""
    from harness.runner import run_trial

    outcome = run_trial(spec)
    ResultsStore(results_root).write_trial(outcome.row, outcome.evals)
    return summarize(outcome.row)


def _child(spec_dict: dict[str, Any], results_root: str, conn: Connection) -> None:
    conn.send(execute_trial(TrialSpec.from_dict(spec_dict), results_root))
    conn.close()


def run_isolated(
    specs: Sequence[TrialSpec],
    results_root: str,
    max_parallel: int = 1,
    on_done: Callable[[TrialSummary], None] | None = None,
) -> list[TrialSummary]:
    """Runs each spec in its own process, at most `max_parallel` at once; returns the summaries.

    Children fork from a server that has already imported torch, JAX and the runner (and nothing
    else: no model, no thread pool), so a trial's process starts in milliseconds instead of the
    ~6 s those imports take, and still shares no state with any other trial.
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    pending = list(specs)
    running: dict[int, tuple[Any, TrialSpec, Connection]] = {}
    summaries: list[TrialSummary] = []
    while pending or running:
        while pending and len(running) < max_parallel:
            spec = pending.pop(0)
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(spec.to_dict(), results_root, sender))
            proc.start()
            sender.close()
            running[proc.sentinel] = (proc, spec, receiver)
        for sentinel in multiprocessing.connection.wait(list(running)):
            proc, spec, receiver = running.pop(sentinel)  # type: ignore[arg-type]
            summary = _collect(proc, spec, receiver, results_root)
            summaries.append(summary)
            if on_done is not None:
                on_done(summary)
    return summaries


def _collect(proc: Any, spec: TrialSpec, receiver: Connection, results_root: str) -> TrialSummary:
    proc.join()
    if receiver.poll():
        try:
            summary: TrialSummary = receiver.recv()
            return summary
        except EOFError:
            pass
    from harness.runner import failed_outcome

    outcome = failed_outcome(spec, f"trial process died with exit code {proc.exitcode}")
    ResultsStore(results_root).write_trial(outcome.row, outcome.evals)
    return summarize(outcome.row)
