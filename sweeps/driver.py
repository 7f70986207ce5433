"""The local sweep driver: trials through Ray Tune on this machine, results into the store.

Each trial spec becomes one Ray Tune trial. Ray's actors are reused, and each trial runs in a fresh
process forked from the actor's preloaded fork server (`harness.isolation`): one process per trial,
without paying the seconds of torch and JAX imports per trial. The trial writes its rows to the
results store itself; the driver only schedules, shows progress, and records trials whose process
died before writing. Trials already in the store are skipped, so re-running an interrupted sweep
finishes it without repeating finished trials.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import Callback
from tqdm import tqdm

from harness.isolation import TrialSummary, run_isolated, summarize
from harness.results import ResultsStore
from harness.submission import load_submission
from harness.trial import TrialSpec

_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_AIR_NEW_OUTPUT": "0",
}

__all__ = ["SweepInterrupted", "pending_specs", "run_sweep", "spec_trial_id"]


@functools.cache
def _submission_identity(submission: str) -> tuple[str, str]:
    loaded = load_submission(submission)
    return loaded.name, loaded.source_hash


def spec_trial_id(spec: TrialSpec) -> str:
    """The id the runner will give this spec's trial (workload version + submission source)."""
    from workloads import WORKLOADS

    name, source_hash = _submission_identity(spec.submission)
    return spec.trial_id(WORKLOADS[spec.workload].version, name, source_hash)


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


def _trainable(config: dict[str, Any], specs: list[dict[str, Any]], results_root: str) -> None:
    (summary,) = run_isolated([TrialSpec.from_dict(specs[config["index"]])], results_root)
    tune.report({k: v for k, v in summary.items() if v is not None})


def run_sweep(specs: Sequence[TrialSpec], results_root: str | Path, num_cpus: int = 2,
              show_progress: bool = True) -> list[TrialSummary]:  # fmt: skip
    """Runs every pending spec through Ray Tune, at most `num_cpus` at once; returns summaries."""
    root = str(Path(results_root).resolve())
    todo = pending_specs(specs, root)
    if not todo:
        return []
    progress = _Progress(len(todo), len(specs) - len(todo), show_progress)
    for key, value in _RAY_ENV.items():  # Ray reads these at start: no telemetry, no extra logs
        os.environ.setdefault(key, value)
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, configure_logging=False)  # fmt: skip
    try:
        trainable = tune.with_parameters(
            _trainable, specs=[s.to_dict() for s in todo], results_root=root
        )
        with tempfile.TemporaryDirectory(prefix="optbench-ray-") as ray_storage:
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": 1}),
                param_space={"index": tune.grid_search(list(range(len(todo))))},
                tune_config=tune.TuneConfig(max_concurrent_trials=num_cpus, reuse_actors=True),
                run_config=tune.RunConfig(storage_path=ray_storage, name="sweep", verbose=0,
                                          callbacks=[progress]),  # fmt: skip
            )
            results = tuner.fit()
    finally:
        ray.shutdown()
        progress.close()
    return _collect(todo, results, root)


def _collect(todo: list[TrialSpec], results: Any, root: str) -> list[TrialSummary]:
    """Summaries of the finished trials; a trial whose worker died is recorded as failed here.

    Raises:
      SweepInterrupted: some trials never finished (Ctrl-C); re-running the sweep finishes them.
    """
    from harness.runner import failed_outcome

    summaries, unfinished = [], 0
    for result in results:
        if result.metrics and "status" in result.metrics:
            summaries.append(summarize(result.metrics))
        elif result.error is not None:
            spec = todo[result.config["index"]]
            outcome = failed_outcome(spec, f"trial worker died: {result.error!r}")
            ResultsStore(root).write_trial(outcome.row, outcome.evals)
            summaries.append(summarize(outcome.row))
        else:
            unfinished += 1
    if unfinished:
        raise SweepInterrupted(
            f"sweep interrupted with {unfinished} trial(s) not finished; re-run the same command "
            "to finish it (finished trials are kept and not repeated)"
        )
    return summaries


class SweepInterrupted(Exception):
    """The sweep stopped before every trial finished (not an input error: exit status 130)."""


class _Progress(Callback):
    """A tqdm bar over the sweep's trials, fed by Ray Tune's callbacks."""

    def __init__(self, total: int, already_done: int, enabled: bool) -> None:
        self._bar = tqdm(total=total, desc="trials", unit="trial", disable=not enabled,
                         postfix={"already done": already_done})  # fmt: skip

    def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self._bar.update(1)

    def on_trial_error(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
