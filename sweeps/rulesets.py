"""Rulesets: the tuning budget every submission gets, the same for all of them.

A ruleset cuts a sweep into **lanes**, one per (submission, workload, study), and says what each
lane may run:

- `external` (AlgoPerf's external tuning): N trials per study, S studies, points from the
  submission's search space by the sweep's search algorithm. Per study the best trial counts, per
  workload the median over studies (`reports.scoring`).
- `self` (AlgoPerf's self-tuning): no search space: one trial per study at the submission's
  defaults (its space's centre), with `budget_factor` times the workload's step and time budgets.
- `compute`: every study the same total trial-seconds (`budget_s`, the trials' own wall clocks),
  spent one trial after another on quasi-random points; a slow optimizer gets fewer trials. The
  last trial may overrun, so totals agree within one trial.

The ruleset, its numbers and the search algorithm are recorded with every trial (`ruleset_json`).

Tracks. By default (`fixed-model`) a lane runs the workload at its scale. Under the
`fixed-resource` track (`ResourceCaps`) every trial gets the same memory cap and time budget, and
the lane's search space gains one more dimension, `workload_scale`: a choice among the rungs of
the workload's ladder at every allowed batch (`Workload.ladder_scales`). It is drawn by the same
seeded sequence (or TPE) as the hyperparameters, so choosing a model size costs tuning budget like
any hyperparameter; the drawn value becomes the trial's scale and leaves its hparams. The track,
its caps and the ladder are recorded in `ruleset_json`; the fixed-model track records nothing new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.errors import UsageError
from harness.search_space import Choice, SearchSpace
from harness.trial import RulesetName, SearchAlgorithm, Track, TrialSpec
from sweeps.points import quasi_random_points

__all__ = [
    "ComputeRuleset",
    "ExternalRuleset",
    "Lane",
    "ResourceCaps",
    "Ruleset",
    "SelfRuleset",
    "WorkloadAtScale",
    "lanes_of_specs",
    "make_ruleset",
    "DEFAULT_WORKLOADS",
    "REFERENCES",
    "RUNG_KEY",
    "SEARCH_ALGORITHMS",
]

# The references a submission is compared against (`optbench submit`), and the suite a sweep
# runs on unless told otherwise (`--workloads`).
REFERENCES = ("adamw", "sgd-nesterov", "muon", "adamw-optax")
DEFAULT_WORKLOADS = "digits,nanogpt"
SEARCH_ALGORITHMS = tuple(str(a) for a in SearchAlgorithm)
RUNG_KEY = "workload_scale"  # the fixed-resource track's extra search dimension


@dataclass(frozen=True, slots=True)
class WorkloadAtScale:
    name: str
    scale: str


@dataclass(frozen=True, slots=True)
class ResourceCaps:
    """The fixed-resource track: every trial's memory cap (bytes above its staged data) and its
    timed-training budget (`TrialSpec.memory_cap_bytes`, `TrialSpec.max_time_s`)."""

    memory_cap_bytes: int
    time_budget_s: float


@dataclass(frozen=True, slots=True)
class Lane:
    """The trials of one study of one submission on one workload.

    Attributes:
      submission: the submission's folder; `submission_name` its name.
      trials: how many trials the lane runs (None: until `budget_s` trial-seconds are spent).
      points_seed: seeds the lane's points (quasi-random sequence, or the TPE sampler).
      overrides: `TrialSpec` fields every trial of the lane sets (budgets, device, processes).
      explicit: the lane's trials given one by one (`lanes_of_specs`) instead of by its ruleset.
      ladder: the fixed-resource track's scales, the choices of the `RUNG_KEY` dimension of
        `space` (empty: the fixed-model track, every trial at `workload.scale`).
    """

    submission: str
    submission_name: str
    space: SearchSpace
    workload: WorkloadAtScale
    study: int
    ruleset: Ruleset
    trials: int | None
    budget_s: float | None
    points_seed: int
    data_dir: str
    command_line: str = ""
    overrides: tuple[tuple[str, Any], ...] = ()
    explicit: tuple[TrialSpec, ...] = ()
    ladder: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.submission_name}|{self.workload.name}@{self.workload.scale}|{self.study}"

    @property
    def ruleset_json(self) -> str:
        return self.explicit[0].ruleset_json if self.explicit else self.ruleset.to_json(self.ladder)

    def indices(self) -> list[int] | None:
        """The trial indices of an explicit lane (None: 0, 1, 2, ...)."""
        return sorted(s.trial_index for s in self.explicit) if self.explicit else None

    def trial(self, index: int) -> TrialSpec:
        """Trial `index` of the lane with its quasi-random point (or its explicit spec)."""
        for spec in self.explicit:
            if spec.trial_index == index:
                return spec
        return self.spec(self.point(index), index)

    def point(self, index: int) -> dict[str, Any]:
        """Quasi-random point `index` of the lane (the space's centre under `self`)."""
        if self.ruleset.name == RulesetName.SELF:
            return self.space.center()
        return quasi_random_points(self.space, self.points_seed, index + 1)[index]

    def spec(self, point: dict[str, Any], index: int) -> TrialSpec:
        """Trial `index` at `point` (whose `RUNG_KEY`, on the fixed-resource track,
        is its scale)."""
        hparams = dict(point)
        scale = hparams.pop(RUNG_KEY) if self.ladder else self.workload.scale
        return TrialSpec(
            workload=self.workload.name,
            scale=scale,
            submission=self.submission,
            hparams_json=TrialSpec.canonical_hparams(hparams),
            seed=self.ruleset.trial_seed(self.study, index),
            data_dir=self.data_dir,
            ruleset=self.ruleset.name,
            ruleset_json=self.ruleset_json,
            study=self.study,
            trial_index=index,
            command_line=self.command_line,
            **dict(self.overrides),
        )


@dataclass(frozen=True, slots=True)
class Ruleset:
    """What the rulesets share: S studies, a sweep seed, a search algorithm, and the
    fixed-resource track's caps (None: the fixed-model track)."""

    num_studies: int = 3
    seed: int = 0
    search: str = SearchAlgorithm.QUASI_RANDOM
    caps: ResourceCaps | None = None

    name = "ruleset"

    def to_json(self, ladder: Sequence[str] = ()) -> str:
        """The record every trial carries; the fixed-resource track adds its caps and `ladder`."""
        record = {"name": self.name, **{k: v for k, v in asdict(self).items() if k != "caps"}}
        if self.caps is not None:  # absent otherwise, so fixed-model trial ids stay as they were
            record.update(
                track=str(Track.FIXED_RESOURCE),
                memory_cap_bytes=self.caps.memory_cap_bytes,
                time_budget_s=self.caps.time_budget_s,
                ladder=list(ladder),
            )
        return json.dumps(record, sort_keys=True)

    def point_seed(self, study: int) -> int:
        return self.seed * 1000 + study

    def trial_seed(self, study: int, trial_index: int) -> int:
        """The model/data seed of a trial: a function of (sweep seed, study, trial index)."""
        key = f"{self.seed}/{study}/{trial_index}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF

    def lane_budget(self) -> tuple[int | None, float | None]:
        raise NotImplementedError

    def overrides(self, workload: WorkloadAtScale) -> dict[str, Any]:
        return {}

    def lanes(
        self,
        submission: str,
        name: str,
        space: SearchSpace,
        workloads: list[WorkloadAtScale],
        data_dir: str,
        command_line: str = "",
        overrides: dict[str, Any] | None = None,
    ) -> list[Lane]:
        """The lanes this ruleset grants one submission, in a fixed order.

        Raises:
          UsageError: on the fixed-resource track, a workload without a ladder at its scale, or
            a search space that cannot take the ladder's dimension.
        """
        trials, budget_s = self.lane_budget()
        ladders = {w: self._ladder(w) for w in workloads}
        spaces = {w: _with_ladder(space, ladders[w]) for w in workloads}
        # The fixed-resource track reports the best metric within the budget: train to it.
        caps = (
            {}
            if self.caps is None
            else {
                "memory_cap_bytes": self.caps.memory_cap_bytes,
                "max_time_s": self.caps.time_budget_s,
                "stop_at_target": False,
            }
        )
        return [
            Lane(
                submission=submission,
                submission_name=name,
                space=spaces[workload],
                workload=workload,
                study=study,
                ruleset=self,
                trials=trials,
                budget_s=budget_s,
                points_seed=self.point_seed(study),
                data_dir=data_dir,
                command_line=command_line,
                overrides=tuple(
                    sorted({**self.overrides(workload), **caps, **(overrides or {})}.items())
                ),
                ladder=ladders[workload],
            )
            for study in range(self.num_studies)
            for workload in workloads
        ]

    def _ladder(self, workload: WorkloadAtScale) -> tuple[str, ...]:
        """The fixed-resource track's choice of scales for `workload` (empty off the track)."""
        if self.caps is None:
            return ()
        from workloads import WORKLOADS

        return WORKLOADS[workload.name].ladder_scales(workload.scale, with_batches=True)

    def plan(
        self,
        submission: str,
        space: SearchSpace,
        workloads: list[WorkloadAtScale],
        data_dir: str,
        command_line: str = "",
    ) -> list[TrialSpec]:
        """Every trial of a fixed-size ruleset with quasi-random points, in a fixed order."""
        specs = []
        for lane in self.lanes(submission, submission, space, workloads, data_dir, command_line):
            assert lane.trials is not None, "a compute budget has no fixed plan"
            specs += [lane.spec(lane.point(i), i) for i in range(lane.trials)]
        return specs


@dataclass(frozen=True, slots=True)
class ExternalRuleset(Ruleset):
    """N trials x S studies per (submission, workload)."""

    num_trials: int = 5
    name = RulesetName.EXTERNAL

    def lane_budget(self) -> tuple[int | None, float | None]:
        return self.num_trials, None


@dataclass(frozen=True, slots=True)
class SelfRuleset(Ruleset):
    """One trial x S studies at the defaults, with `budget_factor` x the workload's budgets."""

    budget_factor: float = 3.0
    name = RulesetName.SELF

    def lane_budget(self) -> tuple[int | None, float | None]:
        return 1, None

    def overrides(self, workload: WorkloadAtScale) -> dict[str, Any]:
        from workloads import WORKLOADS

        budget = WORKLOADS[workload.name].configs[workload.scale].budget
        return {
            "max_steps": round(self.budget_factor * budget.max_steps),
            "max_time_s": self.budget_factor * budget.max_time_s,
        }


@dataclass(frozen=True, slots=True)
class ComputeRuleset(Ruleset):
    """`budget_s` trial-seconds per (submission, workload, study), spent trial after trial."""

    budget_s: float = 600.0
    name = RulesetName.COMPUTE

    def lane_budget(self) -> tuple[int | None, float | None]:
        return None, self.budget_s


def _with_ladder(space: SearchSpace, ladder: tuple[str, ...]) -> SearchSpace:
    """`space` with the fixed-resource track's `RUNG_KEY` dimension (unchanged without a ladder)."""
    if not ladder:
        return space
    if space.fixed_points:
        raise UsageError(
            f"{space.source}: the fixed-resource track adds the model size to the "
            "search, which a list of fixed points cannot take; give ranges or "
            "feasible_points"
        )
    if any(d.name == RUNG_KEY for d in space.dims):
        raise UsageError(
            f"{space.source}: {RUNG_KEY!r} is the fixed-resource track's own "
            "dimension; rename that hyperparameter"
        )
    return SearchSpace(dims=(*space.dims, Choice(RUNG_KEY, ladder)), source=space.source)


def lanes_of_specs(specs: list[TrialSpec], name_of: Any) -> list[Lane]:
    """Lanes running exactly `specs` (grouped by submission, workload, study and ruleset);
    `name_of(folder)` is a submission's name."""
    groups: dict[tuple[str, str, str, int, str], list[TrialSpec]] = {}
    for spec in specs:
        key = (spec.submission, spec.workload, spec.scale, spec.study, spec.ruleset_json)
        groups.setdefault(key, []).append(spec)
    lanes = []
    for (submission, workload, scale, study, _), group in groups.items():
        lanes.append(
            Lane(
                submission=submission,
                submission_name=name_of(submission),
                space=SearchSpace(dims=()),
                workload=WorkloadAtScale(workload, scale),
                study=study,
                ruleset=ExternalRuleset(),
                trials=len(group),
                budget_s=None,
                points_seed=0,
                data_dir=group[0].data_dir,
                explicit=tuple(group),
            )
        )
    return lanes


def make_ruleset(
    name: str,
    *,
    trials: int,
    studies: int,
    seed: int,
    search: str,
    budget_s: float | None,
    budget_factor: float,
    caps: ResourceCaps | None = None,
) -> Ruleset:
    """The ruleset `name` with the command line's numbers (`caps`: the fixed-resource track).

    Raises:
      UsageError: unknown ruleset or search algorithm, or a combination that makes no sense.
    """
    name, search = str(name), str(search)  # the values of `RulesetName`, `SearchAlgorithm`
    if search not in SEARCH_ALGORITHMS:
        raise UsageError(f"--search {search!r}: choose one of {', '.join(SEARCH_ALGORITHMS)}")
    if name == "external":
        return ExternalRuleset(
            num_studies=studies, seed=seed, search=search, caps=caps, num_trials=trials
        )
    if name in ("self", "compute") and search != "quasi-random":
        raise UsageError(
            f"--ruleset {name} uses no search algorithm; --search {search} applies "
            "to the external ruleset only"
        )
    if name == "self":
        if caps is not None:
            raise UsageError(
                "--track fixed-resource searches the model size, and --ruleset self "
                "runs no search: use --ruleset external or compute"
            )
        return SelfRuleset(num_studies=studies, seed=seed, budget_factor=budget_factor)
    if name == "compute":
        if budget_s is None:
            raise UsageError("--ruleset compute needs --budget-s (trial-seconds per study)")
        return ComputeRuleset(num_studies=studies, seed=seed, caps=caps, budget_s=budget_s)
    raise UsageError(f"--ruleset {name!r}: choose external, self or compute")
