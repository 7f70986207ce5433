"""What identifies a trial (its spec, resolved into an id), and how a trial can end."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "FAULTS",
    "FINISHED",
    "ResolvedTrial",
    "RulesetName",
    "SearchAlgorithm",
    "Track",
    "TrialSpec",
    "TrialStatus",
    "search_algorithm",
]


class RulesetName(StrEnum):
    """The tuning budget a trial was run under (`TrialSpec.ruleset`)."""

    SINGLE = "single"  # one trial asked for by `optbench run`
    EXTERNAL = "external"  # N trials x S studies from the submission's search space
    SELF = "self"  # 1 trial x S studies at the defaults, for self-tuning submissions
    COMPUTE = "compute"  # trial-seconds per study, spent trial after trial


class SearchAlgorithm(StrEnum):
    """How an external-ruleset study picks its points."""

    QUASI_RANDOM = "quasi-random"
    TPE = "tpe"  # Optuna's TPE through Ray Tune
    ASHA = "asha"  # quasi-random points, stopped early by ASHA


class Track(StrEnum):
    """What is held fixed across submissions."""

    FIXED_MODEL = "fixed-model"  # the model, data, batch and precision
    FIXED_RESOURCE = "fixed-resource"  # a memory cap and a time budget; the model size is searched


class TrialStatus(StrEnum):
    """How a trial ended."""

    TARGET_REACHED = "target_reached"
    BUDGET_EXHAUSTED = "budget_exhausted"  # step or time budget spent without reaching the target
    DIVERGED = "diverged"  # non-finite training loss or eval metric
    FAILED = "failed"  # raised; the traceback is kept in the `error` column
    # Ended from outside the trial's process (recorded by the launcher, `sweeps.launchers`):
    KILLED = "killed"  # the process died by a signal (SIGKILL, out of memory, node failure)
    CANCELLED = "cancelled"  # its SLURM job was cancelled (scancel)
    TIMED_OUT = "timed_out"  # its SLURM job hit the job's time limit
    STOPPED = "stopped"  # stopped early by the search's scheduler (ASHA)
    # Its measured peak memory exceeded the trial's memory cap (fixed-resource track), or it ran
    # out of memory under the cap on a GPU. Neither finished normally nor a fault: the metrics
    # it reached are kept, but its result does not count.
    OVER_BUDGET = "over_budget"


FINISHED = frozenset(
    {TrialStatus.TARGET_REACHED, TrialStatus.BUDGET_EXHAUSTED}
)  # trained to the end
# Ended with no usable result: an error, or its process or job ended from outside.
FAULTS = frozenset(
    {TrialStatus.FAILED, TrialStatus.KILLED, TrialStatus.CANCELLED, TrialStatus.TIMED_OUT}
)


def search_algorithm(ruleset_json: str) -> str:
    """The search algorithm a trial's recorded ruleset names (quasi-random where none is named)."""
    return str(json.loads(ruleset_json).get("search", SearchAlgorithm.QUASI_RANDOM))


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """Everything that determines one trial: a trial is a pure function of its spec.

    Attributes:
      workload: workload name (a key of `workloads.WORKLOADS`).
      scale: `smoke` or `full`.
      submission: a submission folder path or a reference submission name.
      hparams_json: the hyperparameter point, as canonical JSON (sorted keys).
      seed: seeds model init and data order.
      data_dir: where prepared datasets live.
      ruleset, ruleset_json, study, trial_index: the sweep this trial belongs to.
      device: torch device string.
      num_threads: torch CPU threads for this trial (per process).
      world_size: processes the trial runs data-parallel over, with the same global batch.
      max_steps, max_time_s: overrides of the workload's budget (None: the workload's own).
      memory_cap_bytes: the most memory the trial may use above its data (fixed-resource track):
        a measured peak above it ends the trial `over_budget`; enforced on CUDA (None: no cap).
      stop_at_target: stop at the first eval that meets the target (else run the whole budget).
      command_line: the command that asked for this trial (provenance).
    """

    workload: str
    scale: str
    submission: str
    hparams_json: str
    seed: int
    data_dir: str
    ruleset: str = RulesetName.SINGLE
    ruleset_json: str = "{}"
    study: int = 0
    trial_index: int = 0
    device: str = "cpu"
    num_threads: int = 1
    world_size: int = 1
    max_steps: int | None = None
    max_time_s: float | None = None
    stop_at_target: bool = True
    memory_cap_bytes: int | None = None
    command_line: str = field(default="", compare=False)

    @staticmethod
    def canonical_hparams(hparams: Mapping[str, Any]) -> str:
        return json.dumps(dict(hparams), sort_keys=True)

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(json.loads(self.hparams_json))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrialSpec:
        return cls(**values)


# Spec fields that joined the id after it was first defined, with the value every trial had
# before: a field at that value is left out of the key, so the ids of those trials stay as they
# were.
_LATER_ID_FIELDS = (("world_size", 1), ("memory_cap_bytes", None))


@dataclass(frozen=True, slots=True)
class ResolvedTrial:
    """A spec with what else its result depends on: the workload's version and the submission's
    name and source hash. Its `trial_id` is computed here and nowhere else.

    A trial whose submission or workload cannot be loaded keeps the id `unresolved` gives it.

    Attributes:
      spec: the trial.
      workload_version: the `version` of the workload `spec.workload` names.
      submission_name: the submission's name (its folder's name).
      submission_hash: sha256 of the submission's files (`harness.submission`).
      trial_id: the id: stable across runs, so a sweep skips trials already in the store.
    """

    spec: TrialSpec
    workload_version: int
    submission_name: str
    submission_hash: str
    trial_id: str = field(init=False)

    def __post_init__(self) -> None:
        s = self.spec
        key: list[Any] = [
            s.workload,
            self.workload_version,
            s.scale,
            self.submission_name,
            self.submission_hash,
            s.hparams_json,
            s.seed,
            s.ruleset,
            s.ruleset_json,
            s.study,
            s.trial_index,
            s.max_steps,
            s.max_time_s,
            s.stop_at_target,
        ]
        for name, earlier in _LATER_ID_FIELDS:
            if getattr(s, name) != earlier:
                key.append([name, getattr(s, name)])
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]
        object.__setattr__(self, "trial_id", digest)

    @classmethod
    def unresolved(cls, spec: TrialSpec) -> ResolvedTrial:
        """The trial of a spec whose submission or workload could not be loaded: version 0, the
        submission as the spec names it, no hash."""
        return cls(spec, 0, spec.submission, "")
