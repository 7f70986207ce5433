"""Where a trial runs, and how its end is recorded: a process on this machine, or a SLURM job.

A Ray trial of a sweep (`sweeps.driver`) calls `supervise`, which starts the trial through a
launcher, or reattaches to the process or job that a killed driver left running (the launch record
`_live/<trial_id>/launch.json` says which), relays the trial's eval points to Ray Tune as they
appear in its progress file, and, when the process or job ends, makes sure the store holds exactly
one row for the trial:

- the trial wrote its own rows (target reached, budget spent, diverged, or failed with a traceback);
- its process died by a signal or its job failed without a result (SIGKILL, out of memory, node
  failure): `killed`, re-run up to `max_retries` times from its last checkpoint (one row, with the
  number of attempts, so a retry never counts twice);
- its SLURM job was cancelled (`cancelled`) or hit its time limit (`timed_out`): recorded, not
  retried;
- the search's scheduler stopped it early (ASHA): `stopped`, with the eval points it reached.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.atomic import write_text_atomic
from harness.errors import UsageError
from harness.isolation import start_isolated
from harness.live import LiveTrial

# At import, not when a trial ends: a row stored after Ray Tune stops a trial must be quick, or
# Ray moves on before it is written (a first import of torch there took seconds).
from harness.recorder import failed_outcome  # imports torch
from harness.results import ResultsStore
from harness.trial import TrialSpec, TrialStatus
from sweeps.identity import spec_trial_id
from sweeps.plan import LauncherKind
from workloads import get_workload

__all__ = [
    "Ending",
    "LocalLauncher",
    "SlurmLauncher",
    "read_launch",
    "supervise",
    "unstored_launches",
]

STOP_MARKER = "stop"  # written into a trial's live folder by the scheduler that stops it
# What multiprocessing's forkserver reports as a child's exit code once the server itself has
# ended (Ray kills a dead driver's workers and their children): the trial's own status is unknown.
_STATUS_LOST = 255
_SINFO_TIMEOUT_S = 20  # a slow controller answers in seconds; one that is down never does


@dataclass(frozen=True, slots=True)
class Ending:
    """How a trial's process or job ended; `status` None: the trial stored its own rows."""

    status: TrialStatus | None
    detail: str = ""
    retryable: bool = False


class TrialHandle(Protocol):
    job_id: str | None

    def done(self) -> bool: ...
    def ending(self, store: ResultsStore, trial_id: str) -> Ending: ...
    def cancel(self) -> None: ...


class Launcher(Protocol):
    name: LauncherKind
    poll_s: float
    max_retries: int

    def start(self, spec: TrialSpec, results_root: str, attempt: int) -> TrialHandle: ...
    def attach(self, launch: dict[str, Any]) -> TrialHandle: ...
    def find(self, trial_id: str) -> TrialHandle | None: ...
    def check_cluster(self) -> None: ...


# -- this machine ------------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process `pid` (tells a live process from a reused pid)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class LocalHandle:
    """A trial process on this machine: a child we started, or one a killed driver left."""

    job_id: str | None = None

    def __init__(self, process: Any = None, pid: int | None = None, started: str | None = None):
        self._process = process
        self.pid = process.pid if process is not None else pid
        self._started = _start_time(self.pid) if process is not None and self.pid else started

    def _running(self) -> bool:
        """The trial's process is alive (its pid not reused by another since)."""
        return self.pid is not None and _start_time(self.pid) == self._started

    def done(self) -> bool:
        if self._process is None:
            return not self._running()
        code = self._process.exitcode
        if code == _STATUS_LOST and self._running():
            self._process = None  # its fork server ended, the trial did not: watch the pid
            return False
        return code is not None

    def ending(self, store: ResultsStore, trial_id: str) -> Ending:
        if store.has_trial(trial_id):
            return Ending(None)
        code = self._process.exitcode if self._process is not None else None
        if code is None:
            return Ending(
                TrialStatus.KILLED, "trial process ended while no driver watched it", retryable=True
            )
        if code < 0:
            name = signal.Signals(-code).name
            return Ending(TrialStatus.KILLED, f"trial process killed by {name}", retryable=True)
        if code == _STATUS_LOST:
            return Ending(
                TrialStatus.KILLED,
                "trial process ended while its fork server was gone (exit status lost)",
                retryable=True,
            )
        return Ending(TrialStatus.FAILED, f"trial process exited with code {code} without a record")

    def cancel(self) -> None:
        if self.pid is not None and not self.done():
            os.kill(self.pid, signal.SIGKILL)
        if self._process is not None:
            self._process.join()


class LocalLauncher:
    """Each trial a fresh process on the machine of the Ray worker that runs its Ray trial.

    The processes fork from a server that has imported torch and the runner, and JAX and optax
    with `preload_jax`: a sweep with an optax submission asks for that, so that no trial's wall
    time (a compute ruleset's budget) holds an import the others were spared."""

    name: LauncherKind = LauncherKind.LOCAL

    def __init__(
        self, poll_s: float = 0.1, max_retries: int = 1, preload_jax: bool = False
    ) -> None:
        self.poll_s = poll_s
        self.max_retries = max_retries
        self.preload_jax = preload_jax

    def start(self, spec: TrialSpec, results_root: str, attempt: int) -> LocalHandle:
        process = start_isolated(spec, results_root, get_workload, attempt, self.preload_jax)
        return LocalHandle(process)

    def attach(self, launch: dict[str, Any]) -> LocalHandle:
        if launch.get("host") != socket.gethostname():
            return LocalHandle(pid=None)  # another machine's process: treat it as gone
        return LocalHandle(pid=launch.get("pid"), started=launch.get("pid_started"))

    def find(self, trial_id: str) -> LocalHandle | None:
        return None  # a process is recorded before it can do anything: nothing to find

    def check_cluster(self) -> None:
        """Nothing to check: the trials run on this machine."""


# -- SLURM -------------------------------------------------------------------------------------


class SlurmHandle:
    """A trial's SLURM job, watched through submitit (sacct at most every `poll_s`)."""

    def __init__(self, job: Any, poll_s: float) -> None:
        self._job = job
        self.job_id: str | None = str(job.job_id)
        self._poll_s = poll_s
        self._last_check = 0.0

    def done(self) -> bool:
        if self._job.paths.result_pickle.exists():
            return True
        if time.monotonic() - self._last_check < self._poll_s:
            return False
        self._last_check = time.monotonic()
        return bool(self._job.done(force_check=True))

    def ending(self, store: ResultsStore, trial_id: str) -> Ending:
        if store.has_trial(trial_id):
            return Ending(None)
        state = self._job.watcher.get_state(self.job_id, mode="force").upper()
        where = f"SLURM job {self.job_id} ended {state}"
        if state.startswith("CANCELLED"):
            return Ending(TrialStatus.CANCELLED, where)
        if state == "TIMEOUT":
            return Ending(TrialStatus.TIMED_OUT, f"{where}: the job's time limit")
        if self._job.paths.result_pickle.exists():
            try:
                self._job.result()
            except Exception as exc:  # the job's own error, pickled by submitit
                if "timed-out" in str(exc):
                    return Ending(TrialStatus.TIMED_OUT, f"{where}: {exc}")
                return Ending(TrialStatus.FAILED, f"{where}: {exc}")
        return Ending(TrialStatus.KILLED, f"{where} without a result", retryable=True)

    def cancel(self) -> None:
        self._job.cancel(check=False)


class SlurmLauncher:
    """Each trial a SLURM job submitted with submitit, as the cluster profile asks."""

    name: LauncherKind = LauncherKind.SLURM

    def __init__(self, profile: Any, results_root: str) -> None:
        self.profile = profile
        self.poll_s = profile.poll_s
        self.max_retries = profile.max_retries
        self.folder = Path(results_root) / "_slurm" / "%j"  # job logs and submitit's pickles

    def check_cluster(self) -> None:
        """Refuses a sweep this machine cannot submit: no SLURM client, a controller that does not
        answer, or a profile partition the cluster lacks. Runs before anything is written.

        Raises:
          UsageError: naming what is missing and the profile.
        """
        where = f"--cluster {self.profile.name}"
        if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
            raise UsageError(
                f"{where}: SLURM's sbatch and sinfo are not on PATH here; run the "
                "sweep on a machine that submits to the cluster (a login node)"
            )
        try:
            found = subprocess.run(
                ["sinfo", "-h", "-o", "%R"],
                capture_output=True,
                text=True,
                timeout=_SINFO_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise UsageError(
                f"{where}: sinfo did not answer within {_SINFO_TIMEOUT_S} s "
                "(is the SLURM controller up?)"
            ) from None
        if found.returncode != 0:
            reason = (found.stderr.strip().splitlines() or ["no output"])[-1]
            raise UsageError(f"{where}: sinfo failed: {reason}")
        partitions = sorted(set(found.stdout.split()))
        if self.profile.partition and self.profile.partition not in partitions:
            raise UsageError(
                f"{where}: partition {self.profile.partition!r} (from the profile) "
                f"is not on this cluster; its partitions: "
                f"{', '.join(partitions) or 'none'}"
            )

    def start(self, spec: TrialSpec, results_root: str, attempt: int) -> SlurmHandle:
        import submitit

        from sweeps.slurm.job import TrialJob

        executor = submitit.AutoExecutor(
            folder=self.folder,
            cluster="slurm",
            slurm_max_num_timeout=self.profile.requeue_on_timeout,
        )
        executor.update_parameters(name=job_name(spec), **self.profile.executor_parameters())
        job = executor.submit(
            TrialJob(
                spec.to_dict(),
                results_root,
                attempt,
                requeue_on_timeout=self.profile.requeue_on_timeout > 0,
            )
        )
        return SlurmHandle(job, self.poll_s)

    def attach(self, launch: dict[str, Any]) -> SlurmHandle:
        import submitit

        return SlurmHandle(
            submitit.SlurmJob(folder=self.folder, job_id=str(launch["job_id"])), self.poll_s
        )

    def find(self, trial_id: str) -> SlurmHandle | None:
        """The queued or running job of a trial whose launch record was never written (the
        driver died between `sbatch` and the record), found by its job name."""
        import submitit

        found = subprocess.run(
            ["squeue", "-h", "-o", "%i", "-n", f"optbench-{trial_id}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        ids = found.stdout.split()
        if found.returncode != 0 or not ids:
            return None
        return SlurmHandle(submitit.SlurmJob(folder=self.folder, job_id=ids[0]), self.poll_s)


def job_name(spec: TrialSpec) -> str:
    """A trial's SLURM job name: unique to the trial, so a lost launch record can be recovered."""
    return f"optbench-{spec_trial_id(spec)}"


# -- supervision -------------------------------------------------------------------------------


def read_launch(live: LiveTrial) -> dict[str, Any] | None:
    """The launch record of a trial (None before its first start)."""
    path = live.folder / "launch.json"
    return json.loads(path.read_text()) if path.exists() else None


def unstored_launches(store: ResultsStore) -> list[dict[str, Any]]:
    """The launch records of trials not stored yet: running, or left by a killed driver."""
    if not store.live_root.is_dir():
        return []
    done = store.completed_trial_ids()
    launches = []
    for folder in sorted(store.live_root.iterdir()):
        launch = read_launch(LiveTrial(folder))
        if launch is not None and folder.name not in done:
            launches.append(launch)
    return launches


def _write_launch(
    live: LiveTrial,
    launcher: Launcher,
    handle: TrialHandle,
    attempt: int,
    job_ids: list[str],
    spec: TrialSpec,
    lane: str,
) -> None:
    live.folder.mkdir(parents=True, exist_ok=True)
    pid = getattr(handle, "pid", None)
    record = {
        "launcher": launcher.name,
        "attempt": attempt,
        "job_id": handle.job_id,
        "job_ids": job_ids,
        "pid": pid,
        "pid_started": _start_time(pid) if pid else None,
        "host": socket.gethostname(),
        "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "spec": spec.to_dict(),
        "lane": lane,
    }
    write_text_atomic(live.folder / "launch.json", json.dumps(record))


def supervise(
    launcher: Launcher,
    spec: TrialSpec,
    trial_id: str,
    results_root: str,
    report: Callable[[dict[str, Any]], None],
    lane: str = "",
) -> None:
    """Runs `spec` to a stored row through `launcher` (see the module docstring); calls
    `report(point)` for each new eval point. A `SystemExit` from `report` (Ray Tune stopping the
    trial) stops a trial its scheduler stopped, with a `stopped` row; otherwise (the sweep is
    interrupted) a local process is killed and a SLURM job keeps running, both to be resumed."""
    store = ResultsStore(results_root)
    if store.has_trial(trial_id):
        return
    live = LiveTrial.under(store.live_root, trial_id)
    launch = read_launch(live)
    if launch is not None and launch["launcher"] == launcher.name:
        handle, attempt, job_ids = launcher.attach(launch), launch["attempt"], launch["job_ids"]
    else:
        attempt, found = 1, launcher.find(trial_id)
        handle = found or launcher.start(spec, results_root, 1)
        job_ids = [handle.job_id] if handle.job_id else []
        _write_launch(live, launcher, handle, attempt, job_ids, spec, lane)
    started, reported = time.monotonic(), 0
    try:
        while True:
            finished = handle.done()
            points = live.read_progress()
            for point in points[reported:]:
                report(point)
            reported = len(points)
            if finished:
                ending = handle.ending(store, trial_id)
                if ending.status is None:
                    break
                if ending.retryable and attempt <= launcher.max_retries:
                    attempt += 1
                    handle = launcher.start(spec, results_root, attempt)
                    job_ids += [handle.job_id] if handle.job_id else []
                    _write_launch(live, launcher, handle, attempt, job_ids, spec, lane)
                    continue
                _record(store, live, spec, ending, attempt, job_ids, time.monotonic() - started)
                break
            time.sleep(launcher.poll_s)
    except SystemExit:
        if (live.folder / STOP_MARKER).exists():
            handle.cancel()
            ending = Ending(TrialStatus.STOPPED, "stopped early by the search's scheduler")
            _record(store, live, spec, ending, attempt, job_ids, time.monotonic() - started)
            store.remove_live(trial_id)
        elif launcher.name == LauncherKind.LOCAL:
            handle.cancel()  # its checkpoint stays: a resumed sweep continues it
        raise
    store.remove_live(trial_id)


def _record(
    store: ResultsStore,
    live: LiveTrial,
    spec: TrialSpec,
    ending: Ending,
    attempts: int,
    job_ids: list[str],
    elapsed_s: float,
) -> None:
    """Stores the row of a trial that could not store its own."""
    assert ending.status is not None
    progress = live.read_progress()
    outcome = failed_outcome(spec, ending.detail, get_workload, ending.status, attempts, progress)
    outcome.record.wall_time_s = elapsed_s  # the supervisor's clock: the process could not say
    if job_ids:
        outcome.record.provenance.slurm_job_id = ",".join(job_ids)
        for row in outcome.evals:
            row["slurm_job_id"] = outcome.record.provenance.slurm_job_id
    store.write_trial(outcome.row, outcome.evals)
