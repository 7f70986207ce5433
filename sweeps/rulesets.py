"""Rulesets: the tuning budget every submission gets, the same for all of them.

`external` (AlgoPerf's external-tuning ruleset): S independent studies, each of N trials drawn from
the submission's search space by a seeded quasi-random sequence. Per study the best trial counts;
per workload the median over studies (see `reports.scoring`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from harness.search_space import SearchSpace
from harness.trial import TrialSpec
from sweeps.points import quasi_random_points

__all__ = ["ExternalRuleset", "WorkloadAtScale"]


@dataclass(frozen=True, slots=True)
class WorkloadAtScale:
    name: str
    scale: str


@dataclass(frozen=True, slots=True)
class ExternalRuleset:
    """N trials x S studies per (submission, workload).

    Attributes:
      num_trials: N, trials per study.
      num_studies: S, independent studies.
      seed: the sweep seed: study s draws its points with seed `seed * 1000 + s`; each trial's
        model/data seed is derived from (seed, study, trial index).
    """

    num_trials: int = 5
    num_studies: int = 3
    seed: int = 0
    name: str = "external"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def point_seed(self, study: int) -> int:
        return self.seed * 1000 + study

    def trial_seed(self, study: int, trial_index: int) -> int:
        key = f"{self.seed}/{study}/{trial_index}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF

    def plan(self, submission: str, space: SearchSpace, workloads: list[WorkloadAtScale],
             data_dir: str, command_line: str = "") -> list[TrialSpec]:  # fmt: skip
        """Every trial this ruleset grants `submission`, in a fixed order."""
        specs = []
        for study in range(self.num_studies):
            points = quasi_random_points(space, self.point_seed(study), self.num_trials)
            for workload in workloads:
                for index, point in enumerate(points):
                    specs.append(TrialSpec(
                        workload=workload.name, scale=workload.scale, submission=submission,
                        hparams_json=TrialSpec.canonical_hparams(point),
                        seed=self.trial_seed(study, index), data_dir=data_dir,
                        ruleset=self.name, ruleset_json=self.to_json(), study=study,
                        trial_index=index, command_line=command_line,
                    ))  # fmt: skip
        return specs
