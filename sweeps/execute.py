"""Running a `SweepPlan` (`sweeps.plan`): check everything that can be checked before any trial,
plan the lanes, drive them through Ray Tune, and end with the leaderboard or the scaling report.

Every check that can refuse the plan runs before anything is written: the outputs the sweep will
replace, the cluster (a missing SLURM partition would hang it), the results root, a `--ray-address`
(Ray waits without end for an address nobody answers at), each submission and its optimizer built
on each workload's parameters. The manifest is written once Ray answers.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.outputs import REPORT_FOLDER, check_output, check_results_root
from harness.submission import load_submission
from harness.trial import RulesetName, Track
from reports.commands import leaderboard_folder, write_leaderboard
from sweeps.driver import SweepInterrupted, check_ray_address, check_search, run_lanes
from sweeps.launchers import Launcher, LocalLauncher, SlurmLauncher
from sweeps.plan import DEFAULT_RETRIES, LauncherKind, SweepCommand, SweepPlan, write_manifest
from sweeps.rulesets import Lane, ResourceCaps, Ruleset, make_ruleset
from sweeps.slurm.profile import load_profile
from workloads import WORKLOADS, get_workload

__all__ = ["LaunchSetup", "launch_setup", "run_plan"]


@dataclass(frozen=True, slots=True)
class LaunchSetup:
    """What the plan's launch choice resolves to before any trial: the SLURM profile's launcher
    (None: the local launcher, built after the prechecks, which decide what its fork server
    preloads), the trials in flight at once, and the trial fields the launcher fixes."""

    slurm: SlurmLauncher | None
    max_retries: int
    max_concurrent: int
    device: str = "cpu"
    num_threads: int = 1
    world_size: int = 1


def launch_setup(plan: SweepPlan) -> LaunchSetup:
    """The launch choice of `plan`, resolved (the SLURM profile read).

    Raises:
      UsageError: an unknown or malformed profile.
    """
    launch = plan.launch
    if launch.kind is LauncherKind.LOCAL:
        retries = DEFAULT_RETRIES if launch.max_retries is None else launch.max_retries
        return LaunchSetup(None, retries, launch.cpus)
    profile = load_profile(str(launch.cluster))
    if launch.max_retries is not None:  # the command line overrides the profile
        profile = dataclasses.replace(profile, max_retries=launch.max_retries)
    return LaunchSetup(
        slurm=SlurmLauncher(profile, str(Path(plan.results).resolve())),
        max_retries=profile.max_retries,
        max_concurrent=profile.array_parallelism,
        device=profile.device,
        num_threads=profile.cpus_per_task,
        world_size=profile.world_size,
    )


def run_plan(plan: SweepPlan, quiet: bool, command_line: str) -> int:
    """Runs `plan` to its end (`command_line`: this process's, for the trials' provenance);
    returns the exit status."""
    if plan.command is SweepCommand.SCALING:
        out_dir, out_flag = _report_folder(plan)
        check_output(out_dir, REPORT_FOLDER, out_flag, results_root=plan.results)
    else:
        leaderboard_folder(plan.results, None)  # the leaderboard written at the end may replace it
    _sweep(plan, quiet, command_line)
    if plan.command is not SweepCommand.SCALING:
        ruleset = str(plan.ruleset.name)
        return write_leaderboard(plan.results, None, ruleset, plan.hardware_class, plan.highlight)
    from reports.report import build_report  # matplotlib: only for the report

    report = build_report(
        "scaling",
        plan.results,
        out_dir,
        reference=plan.reference,
        workload=plan.workloads[0].name,
        scale=plan.scale,
        command_line=command_line,
        out_flag=out_flag,
    )
    print(f"wrote {report.html}", file=sys.stderr)
    return 0


def _report_folder(plan: SweepPlan) -> tuple[Path, str]:
    if plan.report_dir:
        return Path(plan.report_dir), "--report-dir"
    return Path(plan.results) / "report-scaling", "report folder"


def _ruleset(plan: SweepPlan) -> Ruleset:
    choice = plan.ruleset
    caps = None
    if choice.track is Track.FIXED_RESOURCE:
        assert choice.memory_cap_bytes is not None and choice.time_budget_s is not None
        caps = ResourceCaps(choice.memory_cap_bytes, choice.time_budget_s)
    return make_ruleset(
        choice.name,
        trials=choice.trials,
        studies=choice.studies,
        seed=choice.seed,
        search=choice.search,
        budget_s=choice.budget_s,
        budget_factor=choice.budget_factor,
        caps=caps,
    )


def _precheck_workloads(plan: SweepPlan) -> list[Any]:
    """The workloads whose parameters a sweep builds each submission's optimizer on before any
    trial: all of them when trials run here (so unprepared data is refused too); on SLURM or an
    existing Ray cluster, whose nodes may see data this machine does not, the smoke-scale ones
    (data every machine has), or digits@smoke when there are none."""
    chosen = list(plan.workloads)
    if plan.launch.kind is not LauncherKind.LOCAL or plan.launch.ray_address:
        chosen = [w for w in chosen if WORKLOADS[w.name].base_scale_of(w.scale) == "smoke"]
    pairs = [(w.name, w.scale) for w in chosen] or [("digits", "smoke")]
    return [get_workload(name, scale, Path(plan.data_dir)) for name, scale in pairs]


def _lanes(plan: SweepPlan, ruleset: Ruleset, setup: LaunchSetup, command_line: str) -> list[Lane]:
    """Every lane of the plan, each submission loaded and its optimizer built on each precheck
    workload's parameters first (a bad one stops the sweep before any trial)."""
    from harness.precheck import check_submission  # torch: once the cheap checks have passed

    fields: dict[str, Any] = {
        "device": setup.device,
        "num_threads": setup.num_threads,
        "world_size": setup.world_size,
    }
    if plan.max_steps is not None:
        fields["max_steps"] = plan.max_steps
    if plan.train_to_budget:
        fields["stop_at_target"] = False
    lanes: list[Lane] = []
    checked = _precheck_workloads(plan)
    is_self = plan.ruleset.name is RulesetName.SELF
    for name in plan.submissions:
        loaded = load_submission(name, allow_self_tuning=is_self)
        for workload in checked:
            check_submission(loaded, workload, setup.device)
        lanes += ruleset.lanes(
            str(loaded.folder),
            loaded.name,
            loaded.search_space,
            list(plan.workloads),
            plan.data_dir,
            command_line,
            fields,
        )
    return lanes


def _sweep(plan: SweepPlan, quiet: bool, command_line: str) -> None:
    ruleset = _ruleset(plan)
    setup = launch_setup(plan)
    if setup.slurm is not None:  # before anything is written: a missing partition would hang it
        setup.slurm.check_cluster()
    check_results_root(plan.results)  # before any trial: a cluster job may take hours
    if plan.launch.ray_address:  # before anything is written: Ray would wait for it without end
        check_ray_address(plan.launch.ray_address)
    lanes = _lanes(plan, ruleset, setup, command_line)
    check_search(lanes, plan.results)
    # The prechecks built each optimizer: JAX is loaded iff one is optax, and only then does the
    # fork server preload it (no trial's wall time holds an import the others were spared).
    launcher: Launcher = setup.slurm or LocalLauncher(
        max_retries=setup.max_retries, preload_jax="jax" in sys.modules
    )

    def start() -> None:  # once Ray answers: an unreachable cluster leaves nothing behind
        write_manifest(plan.results, plan, lanes)
        print(_banner(plan, ruleset, lanes), file=sys.stderr)

    try:
        run_lanes(
            lanes,
            plan.results,
            launcher,
            max_concurrent=setup.max_concurrent,
            num_cpus=plan.launch.cpus,
            ray_address=plan.launch.ray_address,
            show_progress=not quiet,
            on_connected=start,
        )
    except (SweepInterrupted, KeyboardInterrupt) as exc:
        print(f"optbench: {exc or 'interrupted'}", file=sys.stderr)
        raise SystemExit(130) from None


def _banner(plan: SweepPlan, ruleset: Ruleset, lanes: list[Lane]) -> str:
    first = lanes[0]
    per_lane = (
        f"{first.trials} trial(s)"
        if first.trials is not None
        else f"{first.budget_s:g} trial-seconds"
    )
    track = "" if ruleset.caps is None else ", fixed-resource track"
    workloads = ", ".join(f"{w.name}@{w.scale}" for w in plan.workloads)
    return (
        f"sweep ({ruleset.name} ruleset, {ruleset.search} search{track}, {plan.launch.kind} "
        f"launcher): {len(plan.submissions)} submission(s) x {workloads} x "
        f"{ruleset.num_studies} studies x {per_lane} -> {plan.results}"
    )
