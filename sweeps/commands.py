"""The sweep subcommands of `optbench`: `sweep`, `submit`, `scaling` and `status`.

What they reach into: rulesets, tracks (fixed-model, fixed-resource), search algorithms,
launchers (local, an existing Ray cluster, SLURM) and resuming. A sweep ends with the leaderboard
`optbench leaderboard` writes (`reports.commands.write_leaderboard`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import re
import shlex
from pathlib import Path
from typing import Any

from harness.commandline import (
    Commands,
    add_results,
    default_data_dir,
    nonnegative,
    positive,
    seconds,
)
from harness.errors import OptbenchError, UsageError
from harness.submission import load_submission
from harness.trial import RulesetName, SearchAlgorithm, Track
from sweeps.plan import (
    DEFAULT_RETRIES,
    LaunchChoice,
    LauncherKind,
    RulesetChoice,
    SweepCommand,
    SweepPlan,
    read_manifest,
    read_plan,
)
from sweeps.rulesets import DEFAULT_WORKLOADS, REFERENCES, WorkloadAtScale
from sweeps.trial_commands import parse_workloads

__all__ = ["parse_bytes", "plan_of", "register"]


_BYTE_UNITS = {"": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(text: str) -> int:
    """A size such as `512MiB`, `1.5GiB`, `64KiB` or `1048576` (bytes), as a positive byte count."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _BYTE_UNITS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: give bytes or a number with KiB, MiB or GiB, e.g. 512MiB"
        )
    value = round(float(match.group(1)) * _BYTE_UNITS[unit])
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a memory cap must be at least 1 byte")
    return value


def _add_trial_options(p: argparse.ArgumentParser) -> None:
    """The options `sweep`, `submit` and `scaling` share: results, budgets, search, launcher."""
    p.add_argument("--results", default="results", help="results root (default: %(default)s)")
    p.add_argument(
        "--search",
        default=str(SearchAlgorithm.QUASI_RANDOM),
        choices=[str(a) for a in SearchAlgorithm],
        help="search algorithm of the external ruleset (default: %(default)s)",
    )
    p.add_argument(
        "--max-steps",
        type=positive,
        default=None,
        help="override every trial's step budget (quick looks; recorded per trial)",
    )
    p.add_argument(
        "--launcher",
        default=str(LauncherKind.LOCAL),
        choices=[str(k) for k in LauncherKind],
        help="local: processes on this machine (or --ray-address's cluster); "
        "slurm: one SLURM job per trial (needs --cluster)",
    )
    p.add_argument(
        "--cluster",
        default=None,
        metavar="PROFILE",
        help="SLURM profile: a name in sweeps/slurm/profiles/ or a .toml path",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="attach to a running Ray cluster instead of starting one",
    )
    p.add_argument(
        "--max-retries",
        type=nonnegative,
        default=None,
        help="re-runs of a trial whose process was killed (default: the cluster "
        f"profile's, or {DEFAULT_RETRIES} locally)",
    )
    p.add_argument(
        "--train-to-budget",
        action="store_true",
        help="train every trial to its budget instead of stopping at the target (full "
        "curves; the time to target is still recorded; default for `scaling`)",
    )
    p.add_argument("--trials", type=positive, default=5, help="N: trials per study")
    p.add_argument("--studies", type=positive, default=3, help="S: studies")
    p.add_argument(
        "--seed", type=nonnegative, default=0, help="sweep seed (points and trial seeds; >= 0)"
    )
    p.add_argument(
        "--cpus",
        type=positive,
        default=os.cpu_count() or 1,
        help="trials run at once, one CPU each (default: all cores)",
    )
    p.add_argument("--data-dir", default=default_data_dir(), help="prepared datasets")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_sweep_options(p: argparse.ArgumentParser) -> None:
    _add_trial_options(p)
    p.add_argument(
        "--ruleset",
        default=str(RulesetName.EXTERNAL),
        choices=[str(r) for r in (RulesetName.EXTERNAL, RulesetName.SELF, RulesetName.COMPUTE)],
        help="tuning budget: external = N trials x S studies, self = 1 trial x S "
        "studies at the defaults, compute = --budget-s trial-seconds per study",
    )
    p.add_argument(
        "--hardware-class", default=None, help="leaderboard: only trials of this hardware class"
    )
    p.add_argument(
        "--budget-s", type=seconds, default=None, help="compute ruleset: trial-seconds per study"
    )
    p.add_argument(
        "--budget-factor",
        type=seconds,
        default=3.0,
        help="self ruleset: x the workload's budgets (default: %(default)s)",
    )
    p.add_argument("--workloads", default=DEFAULT_WORKLOADS, help="comma-separated workload names")
    p.add_argument("--scale", default="smoke", help="workload scale (default: %(default)s)")
    p.add_argument(
        "--track",
        default=str(Track.FIXED_MODEL),
        choices=[str(t) for t in Track],
        help="fixed-model: every trial at --scale; fixed-resource: every trial under "
        "--memory-cap and --time-budget-s, the model size and batch drawn from the "
        "workload's ladder as one more search dimension (default: %(default)s)",
    )
    p.add_argument(
        "--memory-cap",
        type=parse_bytes,
        default=None,
        metavar="SIZE",
        help="fixed-resource: each trial's memory cap above its data, e.g. 512MiB",
    )
    p.add_argument(
        "--time-budget-s",
        type=seconds,
        default=None,
        help="fixed-resource: each trial's timed-training budget in seconds",
    )


def _add_scaling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("workload", help="a workload with a ladder at --scale (see `optbench list`)")
    p.add_argument(
        "--scale", default="smoke", help="the ladder's base scale (default: %(default)s)"
    )
    p.add_argument(
        "--submissions",
        required=True,
        metavar="A,B",
        help="comma-separated submission names or folders",
    )
    p.add_argument(
        "--reference", default=None, help="the submission the report's speedups are relative to"
    )
    p.add_argument(
        "--report-dir",
        default=None,
        help=(
            "where the scaling report goes "
            "(default: RESULTS/report-scaling, as `optbench report scaling`)"
        ),
    )
    _add_trial_options(p)
    # Uncensored final losses: the tuned-LR fit and data equivalence need curves past the target.
    p.set_defaults(
        ruleset=str(RulesetName.EXTERNAL),
        budget_s=None,
        budget_factor=3.0,
        track=str(Track.FIXED_MODEL),
        memory_cap=None,
        time_budget_s=None,
        hardware_class=None,
        train_to_budget=True,
    )


def _ruleset_choice(args: argparse.Namespace) -> RulesetChoice:
    """The options' tuning budget.

    Raises:
      UsageError: caps given off the fixed-resource track, or missing on it.
    """
    track = Track(args.track)
    given = [
        f"--{n}"
        for n, v in (("memory-cap", args.memory_cap), ("time-budget-s", args.time_budget_s))
        if v is not None
    ]
    if track is Track.FIXED_MODEL and given:
        raise UsageError(f"{', '.join(given)}: only for --track fixed-resource")
    if track is Track.FIXED_RESOURCE and len(given) < 2:
        raise UsageError(
            "--track fixed-resource needs --memory-cap SIZE and --time-budget-s "
            "SECONDS (the same for every submission)"
        )
    return RulesetChoice(
        name=RulesetName(args.ruleset),
        trials=args.trials,
        studies=args.studies,
        seed=args.seed,
        search=SearchAlgorithm(args.search),
        budget_s=args.budget_s,
        budget_factor=args.budget_factor,
        track=track,
        memory_cap_bytes=args.memory_cap,
        time_budget_s=args.time_budget_s,
    )


def _launch_choice(args: argparse.Namespace) -> LaunchChoice:
    """The options' launcher.

    Raises:
      UsageError: a profile without the SLURM launcher, or the SLURM launcher without one.
    """
    kind = LauncherKind(args.launcher)
    if kind is LauncherKind.LOCAL and args.cluster:
        raise UsageError("--cluster needs --launcher slurm")
    if kind is LauncherKind.SLURM and not args.cluster:
        raise UsageError("--launcher slurm needs --cluster PROFILE (e.g. --cluster local)")
    return LaunchChoice(kind, args.cluster, args.ray_address, args.max_retries, args.cpus)


def _plan(
    args: argparse.Namespace,
    command: SweepCommand,
    submissions: list[str],
    workloads: list[WorkloadAtScale],
    **extra: Any,
) -> SweepPlan:
    """The plan of `sweep`, `submit` or `scaling` from its options."""
    return SweepPlan(
        command=command,
        submissions=tuple(submissions),
        workloads=tuple(workloads),
        ruleset=_ruleset_choice(args),
        launch=_launch_choice(args),
        results=args.results,
        data_dir=args.data_dir,
        max_steps=args.max_steps,
        train_to_budget=args.train_to_budget,
        hardware_class=args.hardware_class,
        argv=tuple(args.argv),
        **extra,
    )


def plan_of(args: argparse.Namespace) -> SweepPlan:
    """The sweep that the parsed options of `sweep`, `submit` or `scaling` describe.

    Raises:
      UsageError: what the options name does not exist or does not go together.
    """
    command = SweepCommand(args.command)
    if command is SweepCommand.SWEEP:
        if not args.submissions:
            raise UsageError("sweep: name at least one submission (or --resume --results DIR)")
        workloads = parse_workloads(args.workloads, args.scale)
        return _plan(args, command, args.submissions, workloads)
    if command is SweepCommand.SUBMIT:
        is_self = args.ruleset == RulesetName.SELF
        name = load_submission(args.submission, allow_self_tuning=is_self).name
        references = [r for r in args.references.split(",") if r and r != name]
        workloads = parse_workloads(args.workloads, args.scale)
        return _plan(args, command, [args.submission, *references], workloads, highlight=name)
    return _scaling_plan(args)


def _scaling_plan(args: argparse.Namespace) -> SweepPlan:
    """`optbench scaling`'s sweep: the external ruleset on every rung of the workload's ladder at
    --scale, one lane per (submission, rung, study).

    Raises:
      UsageError: unknown workload, no ladder at --scale, no submissions, or a --reference that
        is not among them.
    """
    from workloads import WORKLOADS

    found = parse_workloads(args.workload, args.scale)
    if len(found) != 1:
        raise UsageError(f"scaling: name one workload, got {args.workload!r}")
    name = found[0].name
    rungs = list(WORKLOADS[name].ladder_scales(args.scale))
    submissions = [s.strip() for s in args.submissions.split(",") if s.strip()]
    if not submissions:
        raise UsageError("scaling: --submissions names no submission")
    names = [load_submission(s).name for s in submissions]
    if args.reference is not None and args.reference not in names:
        raise UsageError(
            f"scaling: --reference {args.reference!r} is not one of --submissions "
            f"({', '.join(names)})"
        )
    return _plan(
        args,
        SweepCommand.SCALING,
        submissions,
        [WorkloadAtScale(name, rung) for rung in rungs],
        reference=args.reference,
        report_dir=args.report_dir,
        scale=args.scale,
    )


def cmd_run_plan(args: argparse.Namespace) -> int:
    """`submit`, `scaling`, and `sweep` without --resume: the options' plan, run."""
    from sweeps.execute import run_plan  # Ray, torch: only for a sweep

    return run_plan(plan_of(args), args.quiet, args.command_line)


def cmd_sweep(args: argparse.Namespace) -> int:
    from sweeps.execute import run_plan

    if not args.resume:
        return cmd_run_plan(args)
    if args.submissions or args.launcher != LauncherKind.LOCAL or args.cluster:
        raise UsageError(
            "sweep --resume takes the sweep's options from --results; name no submissions"
        )
    manifest = Path(args.results) / "_sweep" / "manifest.json"
    plan = read_plan(args.results) or _plan_of_recorded(args.parser, args.results, manifest)
    plan = dataclasses.replace(plan, results=args.results)  # the folder may have moved
    try:
        return run_plan(plan, args.quiet, args.command_line)
    except OptbenchError as exc:  # its options came from the manifest: say so
        raise type(exc)(f"in {manifest} (the sweep being resumed): {exc}") from None


def _plan_of_recorded(parser: argparse.ArgumentParser, results: str, manifest: Path) -> SweepPlan:
    """The plan of a manifest written before plans were saved: its recorded command line,
    parsed as the command line is (once).

    Raises:
      UsageError: it does not parse (a manifest edited by hand, or written by another version),
        or names what does not exist.
    """
    argv = read_manifest(results)["argv"]
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages), contextlib.redirect_stdout(messages):
            recorded = parser.parse_args(argv)
    except SystemExit:
        lines = messages.getvalue().strip().splitlines() or ["it asks for help"]
        reason = lines[-1].split(": error: ", 1)[-1]
        raise UsageError(
            f"in {manifest}: the recorded command line `optbench {shlex.join(argv)}` does not "
            f"parse: {reason}"
        ) from None
    recorded.argv, recorded.results = argv, results
    try:
        return plan_of(recorded)
    except OptbenchError as exc:
        raise type(exc)(f"in {manifest} (the sweep being resumed): {exc}") from None


def cmd_status(args: argparse.Namespace) -> int:
    from sweeps.status import sweep_status

    print(sweep_status(args.results))
    return 0


def register(commands: Commands) -> None:
    p = commands.add(
        "sweep",
        cmd_sweep,
        "tune submissions under a ruleset (Ray Tune; local or SLURM)",
        "optbench sweep adamw muon --workloads digits,nanogpt --trials 5 --studies 3\n"
        "optbench sweep adamw muon --launcher slurm --cluster gpu-example --results runs/a\n"
        "optbench sweep --resume --results runs/a\n"
        "optbench sweep adamw muon --workloads nanogpt --track fixed-resource "
        "--memory-cap 512MiB --time-budget-s 20",
    )
    p.add_argument("submissions", nargs="*", help="submission folders or reference names")
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish the sweep recorded in --results (no other options needed)",
    )
    _add_sweep_options(p)

    p = commands.add(
        "scaling",
        cmd_run_plan,
        "sweep submissions on every rung of a workload's model-size ladder; write the "
        "scaling report",
        "optbench scaling nanogpt --scale smoke --submissions adamw,muon --trials 4 "
        "--studies 2 --results runs/scaling --reference adamw",
    )
    _add_scaling_options(p)

    p = commands.add(
        "status",
        cmd_status,
        "a sweep's progress per submission x workload, with an ETA",
        "optbench status --results runs/a",
    )
    add_results(p)

    p = commands.add(
        "submit",
        cmd_run_plan,
        "sweep one submission and the references; print its leaderboard entry",
        "optbench submit path/to/my-optimizer --trials 4 --studies 2",
    )
    p.add_argument("submission", help="submission folder")
    p.add_argument(
        "--references",
        default=",".join(REFERENCES),
        help="comma-separated reference submissions to compare against",
    )
    _add_sweep_options(p)
