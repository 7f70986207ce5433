"""What a SLURM trial job runs: one trial, resumable, on one or several tasks.

submitit pickles a `TrialJob` and runs it on the allocated node (a task per process). The trial
checkpoints at every eval point into the results store's live folder, so a job that SLURM requeues
(`scontrol requeue`, preemption, a node failure) starts again from its last checkpoint: training
time and steps continue, and at most one eval interval is repeated. A job with several tasks runs
one data-parallel trial: torch.distributed (NCCL on GPUs, gloo on CPUs) initialised from SLURM's
environment through submitit; task 0 writes the rows.
"""

from __future__ import annotations

import signal
from typing import Any

import submitit

from harness.trial import TrialSpec
from workloads import get_workload

__all__ = ["TrialJob"]


class TrialJob(submitit.helpers.Checkpointable):
    """One trial as a checkpointable submitit callable.

    Args:
      spec: the trial (`TrialSpec.to_dict()`).
      results_root: the store, on a filesystem the nodes share.
      attempt: the launcher's run of this trial (1 + retries so far).
      requeue_on_timeout: when False, the job ignores submitit's pre-timeout signal and runs into
        its time limit, so SLURM records TIMEOUT (True: submitit requeues it and it resumes).
    """

    def __init__(
        self,
        spec: dict[str, Any],
        results_root: str,
        attempt: int = 1,
        requeue_on_timeout: bool = False,
    ) -> None:
        self.spec = spec
        self.results_root = results_root
        self.attempt = attempt
        self.requeue_on_timeout = requeue_on_timeout

    def __call__(self) -> dict[str, Any] | None:
        if not self.requeue_on_timeout:
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        spec = TrialSpec.from_dict(self.spec)
        env = submitit.JobEnvironment()
        if env.num_tasks == 1:
            from harness.isolation import execute_trial

            return execute_trial(
                spec, self.results_root, get_workload, checkpoints=True, attempt=self.attempt
            )
        return self._data_parallel(spec, env)

    def _data_parallel(self, spec: TrialSpec, env: Any) -> dict[str, Any] | None:
        """Task `env.global_rank` of a data-parallel trial over the job's tasks."""
        import torch
        import torch.distributed as dist

        from harness.isolation import summarize
        from harness.parallel import Collective, leave_process_group
        from harness.recorder import failed_outcome
        from harness.results import ResultsStore
        from harness.runner import run_rank

        if spec.world_size != env.num_tasks:
            raise ValueError(f"trial asks for {spec.world_size} processes, job has {env.num_tasks}")
        distributed = submitit.helpers.TorchDistributedEnvironment().export()
        backend = "nccl" if torch.device(spec.device).type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://")
        store = ResultsStore(self.results_root)
        try:
            collective = Collective(distributed.rank, distributed.world_size)
            outcome = run_rank(spec, get_workload, collective, store.live_root, self.attempt)
        except Exception as exc:  # a rank that cannot even start: the trial fails, as data
            outcome = failed_outcome(spec, f"rank {distributed.rank}: {exc!r}", get_workload)
        finally:
            leave_process_group()
        if distributed.rank != 0:
            return None
        store.write_trial(outcome.row, outcome.evals)
        store.remove_live(outcome.row["trial_id"])
        return summarize(outcome.row)
