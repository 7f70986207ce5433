"""The sweep driver: every lane's trials through one Ray Tune `Tuner`, results into the store.

Ray Tune asks `LaneSearcher` (`sweeps.search`) for trials and runs each as a Ray trial that
supervises it through a launcher (`sweeps.launchers`): a fresh process on the Ray worker's machine
(`local`, this machine or an existing Ray cluster's nodes given by `ray_address`) or a SLURM job
(`slurm`). The trial writes its own rows; the supervisor records what could not (killed,
cancelled, timed out, stopped) and relays eval points to Ray Tune as they appear.

The results store is the sweep's state. A re-run (or `optbench sweep --resume`) skips stored
trials, adopts trials a killed driver left running (their launch records name the process or job),
and runs the rest, so no trial is lost or run twice. The sweep's manifest (`sweeps.plan`,
written once Ray answers) tells `optbench status` and `sweep --resume` what the sweep runs. A
`--ray-address` is checked (`check_ray_address`) before anything is written, since Ray waits
without end for an address nobody answers at.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import Callback

from harness.errors import UsageError
from harness.isolation import TrialSummary, summarize
from harness.results import ResultsStore
from harness.trial import SearchAlgorithm, TrialSpec, search_algorithm
from sweeps.identity import spec_trial_id, submission_name
from sweeps.launchers import Launcher, LocalLauncher
from sweeps.plan import LauncherKind
from sweeps.rulesets import Lane, lanes_of_specs
from sweeps.search import LaneScheduler, LaneSearcher
from sweeps.trainable import trainable
from workloads import WORKLOADS

RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_AIR_NEW_OUTPUT": "0",
}

__all__ = [
    "SweepInterrupted",
    "check_ray_address",
    "check_search",
    "pending_specs",
    "run_lanes",
    "run_sweep",
]


def pending_specs(specs: Sequence[TrialSpec], results_root: str | Path) -> list[TrialSpec]:
    """The specs whose trials are not yet in the store, without duplicates."""
    done = ResultsStore(results_root).completed_trial_ids()
    pending, seen = [], set()
    for spec in specs:
        trial_id = spec_trial_id(spec)
        if trial_id not in done and trial_id not in seen:
            seen.add(trial_id)
            pending.append(spec)
    return pending


def check_search(lanes: Sequence[Lane], results_root: str | Path) -> None:
    """Refuses a sweep whose search algorithm differs from the one the store's trials of the
    same ruleset used: one leaderboard compares submissions tuned by one algorithm.

    Raises:
      UsageError: naming both algorithms and the results root.
    """
    wanted = {(lane.ruleset.name, lane.ruleset.search) for lane in lanes if not lane.explicit}
    trials = ResultsStore(results_root).read_trials()
    for ruleset, search in wanted:
        for ruleset_json in trials.loc[trials["ruleset"] == ruleset, "ruleset_json"].unique():
            used = search_algorithm(ruleset_json)
            if used != search:
                raise UsageError(
                    f"{results_root}: its {ruleset} trials were tuned with --search {used}; a "
                    f"leaderboard may not mix search algorithms: use --search {used}, or another "
                    f"--results folder for the --search {search} study"
                )


def run_sweep(
    specs: Sequence[TrialSpec],
    results_root: str | Path,
    num_cpus: int = 2,
    show_progress: bool = True,
) -> list[TrialSummary]:
    """Runs exactly `specs` (those not stored yet) on this machine; returns their summaries."""
    lanes = lanes_of_specs(list(specs), submission_name)
    return run_lanes(
        lanes,
        results_root,
        LocalLauncher(),
        max_concurrent=num_cpus,
        num_cpus=num_cpus,
        show_progress=show_progress,
    )


def run_lanes(
    lanes: Sequence[Lane],
    results_root: str | Path,
    launcher: Launcher,
    max_concurrent: int,
    num_cpus: int | None = None,
    ray_address: str | None = None,
    show_progress: bool = True,
    on_connected: Callable[[], None] | None = None,
) -> list[TrialSummary]:
    """Runs every lane to its budget; returns the summaries of the trials this call ran.

    Args:
      on_connected: called once Ray is up (or reached at `ray_address`), before any trial: the
        sweep's manifest is written there, so a cluster that cannot be reached leaves nothing.

    Raises:
      UsageError: the Ray cluster at `ray_address` cannot be reached.
      SweepInterrupted: some lanes did not finish (Ctrl-C); re-running finishes them.
    """
    root = str(Path(results_root).resolve())
    searcher = LaneSearcher(lanes, root, spec_trial_id)
    if all(state.finished() for state in searcher.lanes):
        if on_connected is not None:
            on_connected()
        return []
    before = ResultsStore(root).completed_trial_ids()
    for key, value in RAY_ENV.items():  # Ray reads these at start: no telemetry, no extra logs
        os.environ.setdefault(key, value)
    if ray_address:
        _connect(ray_address)
    else:  # "local": a new Ray instance, never one that RAY_ADDRESS or a `ray start` names
        ray.init(
            address="local",
            num_cpus=num_cpus or max_concurrent,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    progress = _Progress(searcher, show_progress)
    # A local trial occupies a CPU; a SLURM trial's Ray side only waits on its job.
    resources = {"cpu": 1.0 if launcher.name == LauncherKind.LOCAL else 0.01}
    uses_asha = any(lane.ruleset.search == SearchAlgorithm.ASHA for lane in lanes)
    try:
        if on_connected is not None:
            on_connected()
        ray_trial = tune.with_parameters(
            trainable, results_root=root, launcher=launcher, metrics=_target_metrics(lanes)
        )
        with tempfile.TemporaryDirectory(prefix="optbench-ray-") as ray_storage:
            tuner = tune.Tuner(
                tune.with_resources(ray_trial, resources),
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    num_samples=-1,
                    max_concurrent_trials=max_concurrent,
                    scheduler=LaneScheduler(lanes, root) if uses_asha else None,
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    storage_path=ray_storage, name="sweep", verbose=0, callbacks=[progress]
                ),
            )
            tuner.fit()
    finally:
        ray.shutdown()
        progress.close()
    store = ResultsStore(root)
    if not all(state.finished() for state in LaneSearcher(lanes, root, spec_trial_id).lanes):
        raise SweepInterrupted(
            "sweep interrupted before every trial finished; run `optbench sweep --resume "
            f"--results {results_root}` (finished trials are kept and not repeated)"
        )
    new = sorted(store.completed_trial_ids() - before)
    trials = store.read_trials()
    return [summarize(row) for row in trials[trials["trial_id"].isin(new)].to_dict("records")]


def _connect(ray_address: str) -> None:
    """`ray.init` at an existing cluster. Where something answers that is not a Ray head, Ray's
    client logs a warning a second for about 20 s from C++ before it gives up: those lines are
    held back, shown only if the connection succeeds, and the failure is one line.

    Raises:
      UsageError: no Ray cluster answers at `ray_address`.
    """
    with tempfile.TemporaryFile() as held:
        with _stderr_to(held):
            try:
                ray.init(
                    address=ray_address,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=False,
                )
                failure = None
            except ConnectionError as exc:
                failure = exc
        if failure is not None:
            ray.shutdown()
            raise UsageError(f"--ray-address {ray_address}: {failure}; is a Ray head node there?")
        held.seek(0)
        sys.stderr.write(held.read().decode(errors="replace"))


@contextlib.contextmanager
def _stderr_to(file: Any) -> Iterator[None]:
    """File descriptor 2 (what C++ code writes to as well) sent to `file` for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _target_metrics(lanes: Sequence[Lane]) -> dict[str, str]:
    """Each lane's target metric by lane key (the objective its Ray trials report)."""
    return {
        lane.key: str(WORKLOADS[lane.workload.name].configs[lane.workload.scale].target.metric)
        for lane in lanes
    }


def check_ray_address(address: str, timeout_s: float = 3.0) -> None:
    """Refuses `--ray-address` unless something accepts a TCP connection there, within
    `timeout_s` (Ray itself retries an address nobody answers at without end).

    `auto` is resolved as Ray resolves it (the cluster `ray start` left on this machine) first.

    Raises:
      UsageError: the address is not HOST:PORT (or ray://HOST:PORT), `auto` finds no cluster, or
        nothing listens there.
    """
    given = address
    if address == "auto":
        from ray._private import services  # Ray's own lookup of `auto`: no public API has it

        try:
            address = services.canonicalize_bootstrap_address_or_die("auto")
        except ConnectionError as exc:
            raise UsageError(f"--ray-address auto: {exc}") from None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:6379
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"--ray-address {given!r}: expected HOST:PORT (the head node's GCS "
            "address, e.g. 10.0.0.5:6379) or ray://HOST:PORT"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {timeout_s:g} s"
        else:
            reason = exc.strerror or str(exc)
        shown = given if address == given else f"{given} ({address})"
        raise UsageError(
            f"--ray-address {shown}: no Ray cluster answers there ({reason}); start one with "
            "`ray start --head`, or give its head node's address"
        ) from None


class SweepInterrupted(Exception):
    """The sweep stopped before every trial finished (not an input error: exit status 130)."""


class _Progress(Callback):
    """A tqdm bar over the sweep's trials, fed by Ray Tune's callbacks."""

    def __init__(self, searcher: LaneSearcher, enabled: bool) -> None:
        from tqdm import tqdm

        done = sum(len(s.done_indices) for s in searcher.lanes)
        sized = [s.lane.trials for s in searcher.lanes]
        total = sum(sized) if None not in sized else None  # type: ignore[arg-type]
        self._bar = tqdm(
            total=total, initial=done, desc="trials", unit="trial", disable=not enabled
        )

    def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self._bar.update(1)

    def on_trial_error(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
