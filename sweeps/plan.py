"""A sweep as a value: what `sweep`, `submit` and `scaling` will run, decided once.

The command line is read into a `SweepPlan` (`sweeps.commands`), and the plan is what runs. It is
saved in the results root's manifest, `_sweep/manifest.json`, with the lanes it planned, and read
back as it is by `optbench sweep --resume` (no command line is parsed again) and by `optbench
status`. A manifest written before plans were saved holds only the command line (`argv`);
`--resume` builds its plan from that, once.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.atomic import write_text_atomic
from harness.errors import UsageError
from harness.trial import RulesetName, SearchAlgorithm, Track
from sweeps.rulesets import Lane, WorkloadAtScale

__all__ = [
    "DEFAULT_RETRIES",
    "LaunchChoice",
    "LauncherKind",
    "RulesetChoice",
    "SweepCommand",
    "SweepPlan",
    "read_manifest",
    "read_plan",
    "write_manifest",
]


DEFAULT_RETRIES = 1  # re-runs of a killed trial on the local launcher (a profile sets its own)


class SweepCommand(StrEnum):
    """The commands whose sweeps write a manifest (`sweep --resume` runs the recorded one again)."""

    SWEEP = "sweep"
    SUBMIT = "submit"
    SCALING = "scaling"


class LauncherKind(StrEnum):
    LOCAL = "local"  # processes on this machine, or on the Ray cluster at `ray_address`
    SLURM = "slurm"  # one SLURM job per trial, under a cluster profile


@dataclass(frozen=True, slots=True)
class RulesetChoice:
    """The tuning budget every submission gets (`sweeps.rulesets.make_ruleset`)."""

    name: RulesetName
    trials: int
    studies: int
    seed: int
    search: SearchAlgorithm
    budget_s: float | None  # the compute ruleset's trial-seconds per study
    budget_factor: float  # the self ruleset's multiple of the workload's budgets
    track: Track
    memory_cap_bytes: int | None  # the fixed-resource track's caps
    time_budget_s: float | None


@dataclass(frozen=True, slots=True)
class LaunchChoice:
    """Where the trials run."""

    kind: LauncherKind
    cluster: str | None  # the SLURM profile
    ray_address: str | None  # a running Ray cluster to attach to
    max_retries: int | None  # None: the profile's, or the local default
    cpus: int  # trials at once on this machine


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """One sweep, and what ends it (the leaderboard, or the scaling report).

    Attributes:
      command: the command that made it.
      submissions: the submissions as named (folders or reference names); `submit`'s own first.
      workloads: every workload at its scale (`scaling`: every rung of the ladder).
      max_steps: overrides every trial's step budget (None: the workloads' own).
      train_to_budget: every trial trains to its budget instead of stopping at the target.
      hardware_class: the leaderboard's selection.
      highlight: the submission whose score `submit` prints.
      reference, report_dir, scale: `scaling`'s report: speedups relative to `reference`,
        written to `report_dir` (None: RESULTS/report-scaling), the ladder's base `scale`.
      argv: the command line it was made from (the manifest keeps it for people).
    """

    command: SweepCommand
    submissions: tuple[str, ...]
    workloads: tuple[WorkloadAtScale, ...]
    ruleset: RulesetChoice
    launch: LaunchChoice
    results: str
    data_dir: str
    max_steps: int | None = None
    train_to_budget: bool = False
    hardware_class: str | None = None
    highlight: str | None = None
    reference: str | None = None
    report_dir: str | None = None
    scale: str = "smoke"
    argv: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> SweepPlan:
        """The plan `to_json` wrote.

        Raises:
          ValueError, TypeError, KeyError: it is not one (`read_plan` says where).
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or not set(data) <= fields:
            raise ValueError(f"unknown fields {sorted(set(data) - fields)}")
        ruleset, launch = dict(data["ruleset"]), dict(data["launch"])
        return cls(
            **{
                **data,
                "command": SweepCommand(data["command"]),
                "submissions": tuple(str(s) for s in data["submissions"]),
                "workloads": tuple(WorkloadAtScale(**w) for w in data["workloads"]),
                "ruleset": RulesetChoice(
                    **{
                        **ruleset,
                        "name": RulesetName(ruleset["name"]),
                        "search": SearchAlgorithm(ruleset["search"]),
                        "track": Track(ruleset["track"]),
                    }
                ),
                "launch": LaunchChoice(**{**launch, "kind": LauncherKind(launch["kind"])}),
                "argv": tuple(data.get("argv", ())),
            }
        )


# -- the manifest ------------------------------------------------------------------------------


def _path(results_root: str | Path) -> Path:
    return Path(results_root) / "_sweep" / "manifest.json"


def write_manifest(results_root: str | Path, plan: SweepPlan, lanes: Sequence[Lane]) -> None:
    """The sweep's plan and the lanes it planned, for `optbench status` and `sweep --resume`."""
    path = _path(results_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "argv": list(plan.argv),
        "launcher": str(plan.launch.kind),
        "started_unix": time.time(),
        "plan": plan.to_json(),
        "lanes": [
            {
                "key": lane.key,
                "submission": lane.submission_name,
                "workload": f"{lane.workload.name}@{lane.workload.scale}",
                "study": lane.study,
                "ruleset_json": lane.ruleset_json,
                "trials": lane.trials,
                "budget_s": lane.budget_s,
            }
            for lane in lanes
        ],
    }
    write_text_atomic(path, json.dumps(manifest, indent=1))


def read_manifest(results_root: str | Path) -> dict[str, Any]:
    """The manifest of the sweep in `results_root`, checked field by field.

    Raises:
      UsageError: there is none (no sweep was started there), or it is not JSON or lacks or
        mistypes a field; such a message starts "in RESULTS/_sweep/manifest.json:".
    """
    path = _path(results_root)
    root = Path(results_root)
    if root.exists() and not root.is_dir():
        raise UsageError(f"--results {results_root}: is a file, not a folder")
    if not path.is_file():
        raise UsageError(f"{results_root}: no sweep was started here (no {path.name})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        problem: str | None = f"not readable as JSON ({exc})"
    else:
        problem = _manifest_problem(manifest)
    if problem is not None:
        raise UsageError(
            f"in {path}: {problem}; running the sweep's own command again (not "
            "--resume) writes it anew and keeps every stored trial"
        )
    return dict(manifest)


def read_plan(results_root: str | Path) -> SweepPlan | None:
    """The plan saved in the manifest of `results_root` (None: a manifest from before plans were
    saved, which holds only its `argv`).

    Raises:
      UsageError: no manifest, or one `read_manifest` refuses, or a plan that is not one.
    """
    manifest = read_manifest(results_root)
    if "plan" not in manifest:
        return None
    try:
        return SweepPlan.from_json(manifest["plan"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"in {_path(results_root)}: 'plan' is not a sweep plan ({type(exc).__name__}: "
            f"{exc}); running the sweep's own command again (not --resume) writes it anew and "
            "keeps every stored trial"
        ) from None


def _manifest_problem(manifest: Any) -> str | None:
    """What makes `manifest` unusable by `status` and `sweep --resume`, or None."""
    if not isinstance(manifest, dict):
        return f"expected a JSON object, got {type(manifest).__name__}"
    missing = [key for key in ("argv", "launcher", "lanes") if key not in manifest]
    if missing:
        return f"{', '.join(map(repr, missing))} missing (an incomplete manifest)"
    argv, lanes = manifest["argv"], manifest["lanes"]
    commands = [str(c) for c in SweepCommand]
    if (
        not isinstance(argv, list)
        or not argv
        or not all(isinstance(a, str) for a in argv)
        or argv[0] not in commands
    ):
        return (
            f"'argv' must be the command line that started the sweep (a list of strings "
            f"starting with {', '.join(commands)}), got {argv!r:.80}"
        )
    if "--resume" in argv:
        return f"'argv' records a --resume, not the sweep's own command: {argv!r:.80}"
    if not isinstance(manifest["launcher"], str):
        return f"'launcher' must be a string, got {manifest['launcher']!r:.40}"
    if not isinstance(lanes, list):
        return f"'lanes' must be a list, got {type(lanes).__name__}"
    for index, lane in enumerate(lanes):
        problem = _lane_problem(lane)
        if problem is not None:
            return f"lanes[{index}]: {problem}"
    return None


def _lane_problem(lane: Any) -> str | None:
    if not isinstance(lane, dict):
        return f"expected a JSON object, got {type(lane).__name__}"
    for key in ("submission", "workload", "ruleset_json", "trials"):
        if key not in lane:
            return f"{key!r} missing"
    if not isinstance(lane["submission"], str):
        return f"'submission' must be a string, got {lane['submission']!r:.40}"
    workload = lane["workload"]
    if not isinstance(workload, str) or workload.count("@") != 1 or workload.startswith("@"):
        return f"'workload' must be NAME@SCALE, got {workload!r:.40}"
    trials = lane["trials"]
    if trials is not None and (
        isinstance(trials, bool) or not isinstance(trials, int) or trials < 0
    ):
        return f"'trials' must be a count >= 0 or null, got {trials!r:.40}"
    try:
        ruleset = json.loads(lane["ruleset_json"])
    except (TypeError, ValueError):
        ruleset = None
    if not isinstance(ruleset, dict):
        return f"'ruleset_json' must hold a JSON object, got {lane['ruleset_json']!r:.60}"
    ladder = ruleset.get("ladder", [])
    if not isinstance(ladder, list) or not all(isinstance(s, str) for s in ladder):
        return f"'ruleset_json': 'ladder' must be a list of scales, got {ladder!r:.60}"
    return None
