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
import sys
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
from reports.commands import leaderboard_folder, write_leaderboard
from sweeps.rulesets import DEFAULT_WORKLOADS, REFERENCES
from sweeps.trial_commands import parse_workloads

__all__ = ["parse_bytes", "register"]


_DEFAULT_RETRIES = 1


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
        default="quasi-random",
        choices=("quasi-random", "tpe", "asha"),
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
        default="local",
        choices=("local", "slurm"),
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
        f"profile's, or {_DEFAULT_RETRIES} locally)",
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
        default="external",
        choices=("external", "self", "compute"),
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
        default="fixed-model",
        choices=("fixed-model", "fixed-resource"),
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
        ruleset="external",
        budget_s=None,
        budget_factor=3.0,
        track="fixed-model",
        memory_cap=None,
        time_budget_s=None,
        hardware_class=None,
        train_to_budget=True,
    )


def _resource_caps(args: argparse.Namespace) -> Any:
    """The fixed-resource track's caps from the command line (None on the fixed-model track)."""
    from sweeps.rulesets import ResourceCaps

    given = [
        f"--{n}"
        for n, v in (("memory-cap", args.memory_cap), ("time-budget-s", args.time_budget_s))
        if v is not None
    ]
    if args.track == "fixed-model":
        if given:
            raise UsageError(f"{', '.join(given)}: only for --track fixed-resource")
        return None
    if len(given) < 2:
        raise UsageError(
            "--track fixed-resource needs --memory-cap SIZE and --time-budget-s "
            "SECONDS (the same for every submission)"
        )
    return ResourceCaps(memory_cap_bytes=args.memory_cap, time_budget_s=args.time_budget_s)


def _precheck_workloads(workloads: list[Any], args: argparse.Namespace) -> list[Any]:
    """The workloads whose parameters a sweep builds each submission's optimizer on before any
    trial: all of them when trials run here (so unprepared data is refused too); on SLURM or an
    existing Ray cluster, whose nodes may see data this machine does not, the smoke-scale ones
    (data every machine has), or digits@smoke when there are none."""
    from workloads import WORKLOADS, get_workload

    chosen = workloads
    if args.launcher != "local" or args.ray_address:
        chosen = [w for w in workloads if WORKLOADS[w.name].base_scale_of(w.scale) == "smoke"]
    pairs = [(w.name, w.scale) for w in chosen] or [("digits", "smoke")]
    return [get_workload(name, scale, Path(args.data_dir)) for name, scale in pairs]


def _launcher(args: argparse.Namespace) -> tuple[Any, int, dict[str, Any]]:
    """The launcher, the trials in flight at once, and the spec fields the launcher fixes."""
    from sweeps.launchers import LocalLauncher, SlurmLauncher
    from sweeps.slurm.profile import load_profile

    if args.launcher == "local":
        if args.cluster:
            raise UsageError("--cluster needs --launcher slurm")
        retries = _DEFAULT_RETRIES if args.max_retries is None else args.max_retries
        return LocalLauncher(max_retries=retries), args.cpus, {}
    if not args.cluster:
        raise UsageError("--launcher slurm needs --cluster PROFILE (e.g. --cluster local)")
    profile = load_profile(args.cluster)
    if args.max_retries is not None:  # the command line overrides the profile
        profile = dataclasses.replace(profile, max_retries=args.max_retries)
    fields = {
        "device": profile.device,
        "num_threads": profile.cpus_per_task,
        "world_size": profile.world_size,
    }
    launcher = SlurmLauncher(profile, str(Path(args.results).resolve()))
    return launcher, profile.array_parallelism, fields


def _sweep(
    args: argparse.Namespace, submissions: list[str], workloads: list[Any] | None = None
) -> None:
    """Runs the sweep the options describe (on `workloads`, default: --workloads at --scale)."""
    from harness.outputs import check_results_root
    from harness.precheck import check_submission
    from harness.submission import load_submission
    from sweeps.driver import (
        SweepInterrupted,
        check_ray_address,
        check_search,
        run_lanes,
        write_manifest,
    )
    from sweeps.rulesets import make_ruleset

    workloads = workloads or parse_workloads(args.workloads, args.scale)
    ruleset = make_ruleset(
        args.ruleset,
        trials=args.trials,
        studies=args.studies,
        seed=args.seed,
        search=args.search,
        budget_s=args.budget_s,
        budget_factor=args.budget_factor,
        caps=_resource_caps(args),
    )
    launcher, concurrency, fields = _launcher(args)
    launcher.check_cluster()  # before anything is written: a missing SLURM partition would hang it
    check_results_root(args.results)  # before any trial: a cluster job may take hours
    if args.ray_address:  # before anything is written: Ray would wait for it without end
        check_ray_address(args.ray_address)
    if args.max_steps is not None:
        fields = {**fields, "max_steps": args.max_steps}
    if args.train_to_budget:
        fields = {**fields, "stop_at_target": False}
    lanes = []
    checked = _precheck_workloads(workloads, args)
    for name in submissions:  # load all first: a bad submission stops the sweep before any trial
        loaded = load_submission(name, allow_self_tuning=args.ruleset == "self")
        for workload in checked:  # its optimizer too, on each workload's parameters
            check_submission(loaded, workload, fields.get("device", "cpu"))
        lanes += ruleset.lanes(
            str(loaded.folder),
            loaded.name,
            loaded.search_space,
            workloads,
            args.data_dir,
            args.command_line,
            fields,
        )
    check_search(lanes, args.results)
    if (
        launcher.name == "local"
    ):  # the prechecks built each optimizer: JAX is loaded iff one is optax
        launcher.preload_jax = "jax" in sys.modules
    per_lane = (
        f"{lanes[0].trials} trial(s)"
        if lanes[0].trials is not None
        else f"{lanes[0].budget_s:g} trial-seconds"
    )
    track = "" if ruleset.caps is None else ", fixed-resource track"

    def start() -> None:  # once Ray answers: an unreachable cluster leaves nothing behind
        write_manifest(args.results, args.argv, lanes, launcher.name)
        print(
            f"sweep ({ruleset.name} ruleset, {ruleset.search} search{track}, {launcher.name} "
            f"launcher): {len(submissions)} submission(s) x "
            f"{', '.join(f'{w.name}@{w.scale}' for w in workloads)} x {ruleset.num_studies} "
            f"studies x {per_lane} -> {args.results}",
            file=sys.stderr,
        )

    try:
        run_lanes(
            lanes,
            args.results,
            launcher,
            max_concurrent=concurrency,
            num_cpus=args.cpus,
            ray_address=args.ray_address,
            show_progress=not args.quiet,
            on_connected=start,
        )
    except (SweepInterrupted, KeyboardInterrupt) as exc:
        print(f"optbench: {exc or 'interrupted'}", file=sys.stderr)
        raise SystemExit(130) from None


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.resume:
        resumed = _resumed_args(args)
        try:
            return int(resumed.func(resumed) or 0)
        except OptbenchError as exc:  # its options came from the manifest: say so
            manifest = Path(args.results) / "_sweep" / "manifest.json"
            raise type(exc)(f"in {manifest} (the sweep being resumed): {exc}") from None
    if not args.submissions:
        raise UsageError("sweep: name at least one submission (or --resume --results DIR)")
    leaderboard_folder(args.results, None)  # the leaderboard written at the end may replace it
    _sweep(args, args.submissions)
    return write_leaderboard(args.results, None, args.ruleset, args.hardware_class)


def _resumed_args(args: argparse.Namespace) -> argparse.Namespace:
    """The options of the sweep recorded in `--results`, to finish it."""
    from sweeps.driver import read_manifest

    if args.submissions or args.launcher != "local" or args.cluster:
        raise UsageError(
            "sweep --resume takes the sweep's options from --results; name no submissions"
        )
    argv = read_manifest(args.results)["argv"]
    manifest = Path(args.results) / "_sweep" / "manifest.json"
    resumed = _parse_recorded(args.parser, argv, manifest)
    resumed.argv = argv
    resumed.command_line = args.command_line
    resumed.results = args.results
    resumed.quiet = args.quiet
    resumed.parser = args.parser
    return resumed


def _parse_recorded(
    parser: argparse.ArgumentParser, argv: list[str], manifest: Path
) -> argparse.Namespace:
    """`argv`, the command line recorded in `manifest`, parsed as the command line is.

    Raises:
      UsageError: it does not parse (a manifest edited by hand, or written by another version).
    """
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages), contextlib.redirect_stdout(messages):
            return parser.parse_args(argv)
    except SystemExit:
        lines = messages.getvalue().strip().splitlines() or ["it asks for help"]
        reason = lines[-1].split(": error: ", 1)[-1]
        raise UsageError(
            f"in {manifest}: the recorded command line `optbench {shlex.join(argv)}` does not "
            f"parse: {reason}"
        ) from None


def _scaling_sweep(args: argparse.Namespace) -> str:
    """`optbench scaling`'s sweep: the external ruleset on every rung of the workload's ladder at
    --scale, one lane per (submission, rung, study). Returns the workload's name.

    Raises:
      UsageError: unknown workload, no ladder at --scale, no submissions, or a --reference that
        is not among them.
    """
    from harness.submission import load_submission
    from sweeps.rulesets import WorkloadAtScale
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
    _sweep(args, submissions, [WorkloadAtScale(name, rung) for rung in rungs])
    return name


def cmd_scaling(args: argparse.Namespace) -> int:
    from harness.outputs import REPORT_FOLDER, check_output
    from reports.report import build_report

    out_dir = Path(args.report_dir) if args.report_dir else Path(args.results) / "report-scaling"
    out_flag = "--report-dir" if args.report_dir else "report folder"
    check_output(out_dir, REPORT_FOLDER, out_flag, results_root=args.results)  # before the sweep
    name = _scaling_sweep(args)
    report = build_report(
        "scaling",
        args.results,
        out_dir,
        reference=args.reference,
        workload=name,
        scale=args.scale,
        command_line=args.command_line,
        out_flag=out_flag,
    )
    print(f"wrote {report.html}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from sweeps.status import sweep_status

    print(sweep_status(args.results))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from harness.submission import load_submission

    name = load_submission(args.submission, allow_self_tuning=args.ruleset == "self").name
    references = [r for r in args.references.split(",") if r and r != name]
    leaderboard_folder(args.results, None)  # the leaderboard written at the end may replace it
    _sweep(args, [args.submission, *references])
    return write_leaderboard(args.results, None, args.ruleset, args.hardware_class, name)


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
        cmd_scaling,
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
        cmd_submit,
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
