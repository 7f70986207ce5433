"""The Ray trial of a sweep, as a Ray worker runs it: supervise one trial, relay what it reports.

A Ray worker imports this module (and what it names) to run a sweep's trials, so it stays light:
no search algorithms (scipy, Optuna), no workloads (each lane's target metric comes with the
trainable's parameters). torch it does import, through the launcher's row for a trial that could
not write its own: importing torch first when Ray Tune stops a trial takes longer than Ray waits.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from harness.results import ResultsStore
from harness.trial import TrialSpec
from sweeps.launchers import Launcher, supervise

__all__ = ["OBJECTIVE", "trainable"]

OBJECTIVE = "objective"  # the metric Ray Tune's searchers and schedulers read


def trainable(
    config: dict[str, Any], results_root: str, launcher: Launcher, metrics: dict[str, str]
) -> None:
    """One Ray trial: supervise the trial, relay its eval points, report its stored outcome.

    Args:
      config: the searcher's suggestion: the trial's spec, its id and its lane's key.
      metrics: each lane's target metric, by lane key (the objective relayed to Ray Tune).
    """
    spec = TrialSpec.from_dict(config["spec"])
    trial_id, metric = config["trial_id"], metrics[config["lane"]]

    def relay(point: dict[str, Any]) -> None:
        values = {k: v for k, v in point["metrics"].items() if isinstance(v, float)}
        tune.report(
            {
                "step": point["step"],
                "train_time_s": point["train_time_s"],
                **values,
                OBJECTIVE: values.get(metric, float("nan")),
            }
        )

    supervise(launcher, spec, trial_id, results_root, relay, lane=config["lane"])
    row = ResultsStore(results_root).read_trial(trial_id)
    if row is not None:
        best = row["best_metric"]
        tune.report(
            {
                "final": True,
                "status": row["status"],
                OBJECTIVE: best if best is not None else float("nan"),
            }
        )
