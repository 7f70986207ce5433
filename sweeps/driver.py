"""The local sweep driver: trials through Ray Tune on this machine, results into the store.

Each trial spec becomes one Ray Tune trial running in its own Ray worker process (actors are not
reused, so no state leaks between trials). The trainable runs the trial and writes its rows to the
results store itself; the driver only schedules, shows progress, and records trials whose process
died before writing. Trials already in the store are skipped, so re-running an interrupted sweep
finishes it without repeating finished trials.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import Callback
from tqdm import tqdm

from harness.isolation import TrialSummary, execute_trial, summarize
from harness.results import ResultsStore
from harness.submission import load_submission
from harness.trial import TrialSpec

__all__ = ["pending_specs", "run_sweep", "spec_trial_id"]


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
    summary = execute_trial(TrialSpec.from_dict(specs[config["index"]]), results_root)
    tune.report({k: v for k, v in summary.items() if v is not None})


def run_sweep(specs: Sequence[TrialSpec], results_root: str | Path, num_cpus: int = 2,
              show_progress: bool = True) -> list[TrialSummary]:  # fmt: skip
    """Runs every pending spec through Ray Tune, at most `num_cpus` at once; returns summaries."""
    root = str(Path(results_root).resolve())
    todo = pending_specs(specs, root)
    if not todo:
        return []
    progress = _Progress(len(todo), len(specs) - len(todo), show_progress)
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
                tune_config=tune.TuneConfig(max_concurrent_trials=num_cpus, reuse_actors=False),
                run_config=tune.RunConfig(storage_path=ray_storage, name="sweep", verbose=0,
                                          callbacks=[progress]),  # fmt: skip
            )
            results = tuner.fit()
    finally:
        ray.shutdown()
        progress.close()
    return _collect(todo, results, root)


def _collect(todo: list[TrialSpec], results: Any, root: str) -> list[TrialSummary]:
    """Summaries of all trials; a trial whose worker died is recorded as failed here."""
    from harness.runner import failed_outcome

    summaries = []
    for result in results:
        index = result.config["index"]
        if result.error is None and result.metrics and "status" in result.metrics:
            summaries.append(summarize(result.metrics))
            continue
        spec = todo[index]
        outcome = failed_outcome(spec, f"trial worker died: {result.error!r}")
        ResultsStore(root).write_trial(outcome.row, outcome.evals)
        summaries.append(summarize(outcome.row))
    return summaries


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
