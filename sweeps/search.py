"""The search inside each lane, as one Ray Tune searcher (and, for ASHA, one scheduler).

`LaneSearcher` hands Ray Tune the next trial of whichever lane (`sweeps.rulesets.Lane`) may run
one, so every study of every submission progresses at once under one `Tuner`, and each lane gets
exactly its ruleset's budget however trials end or the sweep restarts:

- a fixed lane (external, self) runs its N trials; trials already in the results store are done,
  and trials that a killed driver left running (their launch records) are adopted, not repeated;
- a compute lane runs one trial at a time until its stored trials' wall seconds reach `budget_s`;
- with `search="tpe"` an external lane's points come from Ray Tune's Optuna TPE searcher, one per
  lane, seeded, told every finished trial of its lane (stored ones included) and nothing else;
- with `search="asha"` points are quasi-random and `LaneScheduler` runs one ASHA scheduler per lane:
  a submission's trials compete only with its own study's, on the eval metric reported as they go.

Every trial's objective is the best value of its workload's target metric (direction per workload).
On the fixed-resource track the lane's space carries the ladder's `workload_scale` dimension, so TPE
searches model size with the hyperparameters; a trial `over_budget` (over the memory cap) is told
to TPE as the worst possible value, so it learns which sizes do not fit.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from harness.results import ResultsStore
from harness.search_space import Range, SearchSpace
from harness.trial import FAULTS, SearchAlgorithm, TrialSpec, TrialStatus
from sweeps.launchers import STOP_MARKER, unstored_launches
from sweeps.rulesets import RUNG_KEY, Lane
from sweeps.trainable import OBJECTIVE

__all__ = ["LaneScheduler", "LaneSearcher", "objective_mode"]

_NO_OBJECTIVE = FAULTS | {TrialStatus.DIVERGED}  # trials TPE hears of as failed


def objective_mode(workload: str, scale: str) -> str:
    """`min` or `max`: the direction of the workload's target metric."""
    from workloads import WORKLOADS

    return str(WORKLOADS[workload].configs[scale].target.direction)


def _tune_space(space: SearchSpace) -> dict[str, Any]:
    """The search space in Ray Tune's terms (for Optuna's TPE)."""
    if space.fixed_points:
        return {"__point": tune.choice(list(range(len(space.fixed_points))))}
    return {
        d.name: (
            (tune.loguniform if d.is_log else tune.uniform)(d.low, d.high)
            if isinstance(d, Range)
            else tune.choice(list(d.values))
        )
        for d in space.dims
    }


def _from_tune(space: SearchSpace, config: dict[str, Any]) -> dict[str, Any]:
    if space.fixed_points:
        return dict(space.fixed_points[config["__point"]])
    return {d.name: config[d.name] for d in space.dims}


def _tpe_value(lane: Lane, row: Any) -> float | None:
    """What TPE is told of a stored trial: its best metric, the worst value for a trial over the
    memory cap, or None (a failure: TPE ignores the point)."""
    if row["status"] == TrialStatus.OVER_BUDGET:
        mode = objective_mode(lane.workload.name, lane.workload.scale)
        return float("inf") if mode == "min" else float("-inf")
    value = row.get("best_metric")
    if row["status"] in _NO_OBJECTIVE or value is None or pd.isna(value):
        return None
    return float(value)


class _LaneState:
    """One lane's progress: stored trials, adopted running ones, and what to run next."""

    def __init__(self, lane: Lane, stored: pd.DataFrame, adopted: list[TrialSpec]) -> None:
        self.lane = lane
        self.done_indices = set(int(i) for i in stored["trial_index"])
        self.spent_s = float(stored["wall_time_s"].fillna(0.0).sum())
        self.adopted = [s for s in adopted if s.trial_index not in self.done_indices]
        self.running: dict[str, TrialSpec] = {}
        self.tpe: Any = None
        if lane.ruleset.search == SearchAlgorithm.TPE and lane.trials is not None:
            self._start_tpe(stored)

    def _start_tpe(self, stored: pd.DataFrame) -> None:
        from ray.tune.search.optuna import OptunaSearch

        mode = objective_mode(self.lane.workload.name, self.lane.workload.scale)
        self.tpe = OptunaSearch(
            space=_tune_space(self.lane.space),
            metric=OBJECTIVE,
            mode=mode,
            seed=self.lane.points_seed,
        )
        for _, row in stored.iterrows():  # a resumed lane's TPE knows what its lane already ran
            value = _tpe_value(self.lane, row)
            if value is not None:
                point = json.loads(row["hparams_json"])
                if self.lane.space.fixed_points:
                    point = {
                        "__point": [dict(p) for p in self.lane.space.fixed_points].index(point)
                    }
                if self.lane.ladder:
                    point[RUNG_KEY] = row["scale"]
                self.tpe.add_evaluated_point(point, value)

    @property
    def issued(self) -> int:
        return len(self.done_indices) + len(self.running)

    def finished(self) -> bool:
        if self.running or self.adopted:
            return False
        if self.lane.trials is not None:
            return len(self.done_indices) >= self.lane.trials
        return self.spent_s >= (self.lane.budget_s or 0.0)

    def next_spec(self, tune_trial_id: str) -> TrialSpec | None:
        """The lane's next trial, or None when it must wait (or is finished)."""
        if self.adopted:
            return self.adopted.pop(0)
        if self.finished():
            return None
        if self.lane.trials is None:  # compute: one trial at a time, until the budget is spent
            if self.running:
                return None
        elif self.issued >= self.lane.trials:
            return None
        taken = self.done_indices | {s.trial_index for s in self.running.values()}
        index = next(i for i in (self.lane.indices() or itertools.count()) if i not in taken)
        if self.tpe is not None:
            return self.lane.spec(
                _from_tune(self.lane.space, self.tpe.suggest(tune_trial_id)), index
            )
        return self.lane.trial(index)


class LaneSearcher(Searcher):
    """A Ray Tune searcher over lanes (see the module docstring); configs carry a whole spec."""

    def __init__(self, lanes: Sequence[Lane], results_root: str, trial_id_of: Any) -> None:
        super().__init__(metric=OBJECTIVE, mode="min")
        self._store = ResultsStore(results_root)
        self._trial_id_of = trial_id_of
        stored = self._store.read_trials()
        adopted = _adoptable(self._store)
        self.lanes = [
            _LaneState(lane, _lane_rows(stored, lane), adopted.get(lane.key, [])) for lane in lanes
        ]
        self._owner: dict[str, _LaneState] = {}
        self._cursor = 0

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if all(state.finished() for state in self.lanes):
            return Searcher.FINISHED  # type: ignore[return-value]  # Ray's documented sentinel
        for offset in range(len(self.lanes)):  # round robin: every lane progresses
            state = self.lanes[(self._cursor + offset) % len(self.lanes)]
            spec = state.next_spec(trial_id)
            if spec is not None:
                self._cursor = (self._cursor + offset + 1) % len(self.lanes)
                state.running[trial_id] = spec
                self._owner[trial_id] = state
                return {
                    "spec": spec.to_dict(),
                    "trial_id": self._trial_id_of(spec),
                    "lane": state.lane.key,
                }
        return None

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        state = self._owner.pop(trial_id, None)
        if state is None:
            return
        spec = state.running.pop(trial_id)
        row = self._store.read_trial(self._trial_id_of(spec))
        if row is None:  # the sweep is stopping: the trial is not done and will run again
            state.adopted.insert(0, spec)
            return
        state.done_indices.add(spec.trial_index)
        state.spent_s += float(row.get("wall_time_s") or 0.0)
        if state.tpe is not None:
            value = _tpe_value(state.lane, row)
            state.tpe.on_trial_complete(
                trial_id, None if value is None else {OBJECTIVE: value}, error=value is None
            )

    def save(self, checkpoint_path: str) -> None:  # the results store is the sweep's state
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None


def _lane_rows(stored: pd.DataFrame, lane: Lane) -> pd.DataFrame:
    """The stored trials of `lane` (same submission, workload, scale or one of its ladder's
    scales on the fixed-resource track, study and ruleset)."""
    ruleset_json = lane.ruleset_json
    scales = list(lane.ladder) or [lane.workload.scale]
    mask = (
        (stored["submission"] == lane.submission_name)
        & (stored["workload"] == lane.workload.name)
        & stored["scale"].isin(scales)
        & (stored["study"] == lane.study)
        & (stored["ruleset_json"] == ruleset_json)
    )
    return stored[mask]


def _adoptable(store: ResultsStore) -> dict[str, list[TrialSpec]]:
    """Trials launched but not stored (a killed driver's), by lane key, in trial order."""
    found: dict[str, list[TrialSpec]] = {}
    for launch in unstored_launches(store):
        found.setdefault(launch["lane"], []).append(TrialSpec.from_dict(launch["spec"]))
    for specs in found.values():
        specs.sort(key=lambda s: s.trial_index)
    return found


class LaneScheduler(FIFOScheduler):
    """One ASHA scheduler per lane: a trial is compared only with its own study's trials.

    A stopped trial gets a stop marker in its live folder, so its supervisor records it as
    `stopped` (a sweep that is merely interrupted leaves no marker, and its trials resume).
    """

    def __init__(
        self,
        lanes: Sequence[Lane],
        results_root: str,
        grace_evals: int = 2,
        reduction_factor: int = 3,
    ) -> None:
        super().__init__()
        self._live_root = ResultsStore(results_root).live_root
        self._ashas: dict[str, ASHAScheduler] = {}
        for lane in lanes:
            mode = objective_mode(lane.workload.name, lane.workload.scale)
            self._ashas[lane.key] = ASHAScheduler(
                time_attr="training_iteration",
                metric=OBJECTIVE,
                mode=mode,
                max_t=10_000,
                grace_period=grace_evals,
                reduction_factor=reduction_factor,
            )

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True

    def _asha(self, trial: Any) -> ASHAScheduler:
        return self._ashas[trial.config["lane"]]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if OBJECTIVE not in result:
            return TrialScheduler.CONTINUE
        decision = self._asha(trial).on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and not result.get("final"):
            folder = self._live_root / trial.config["trial_id"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / STOP_MARKER).touch()
        return str(decision)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        if OBJECTIVE in result:
            self._asha(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_remove(tune_controller, trial)
