"""The `optbench report` command: options and action (the reports themselves: `reports.report`)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["REPORT_EXAMPLE", "add_report_options", "add_score_options", "cmd_report", "cmd_score"]

REPORT_EXAMPLE = (
    "optbench report fixed-model --results results/smoke --out reports-out/fixed-model\n"
    "  optbench report fixed-resource --results results/resource --reference adamw\n"
    "  optbench report scaling --results results/scaling --workload nanogpt --scale smoke\n"
    "  optbench report pareto --results results/smoke --workload digits"
)


def add_report_options(p: argparse.ArgumentParser) -> None:
    from harness.cli import _positive  # harness.cli imports this module: resolve at call time
    from reports.report import KINDS

    p.add_argument("kind", choices=KINDS, help="which report")
    p.add_argument("--results", default="results", help="results root (default: %(default)s)")
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: RESULTS/report-KIND); replaced atomically, and "
        "only if it is a report optbench wrote",
    )
    p.add_argument(
        "--reference",
        default=None,
        help="submission that speedups are measured against (default: adamw)",
    )
    p.add_argument("--workload", default=None, help="only this workload (scaling: required)")
    p.add_argument(
        "--scale",
        default=None,
        help="only this scale (scaling: the ladder's base scale, e.g. smoke)",
    )
    p.add_argument(
        "--hardware-class",
        default=None,
        help="only trials of this hardware class (needed when the store mixes them)",
    )
    p.add_argument(
        "--bootstrap",
        type=_positive,
        default=2000,
        help="bootstrap resamples for confidence intervals (default: %(default)s)",
    )


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from reports.report import build_report

    out = Path(args.out) if args.out else Path(args.results) / f"report-{args.kind}"
    report = build_report(
        args.kind,
        args.results,
        out,
        reference=args.reference,
        workload=args.workload,
        scale=args.scale,
        hardware_class=args.hardware_class,
        n_boot=args.bootstrap,
        command_line=args.command_line,
        out_flag="--out" if args.out else "report folder",
    )
    print(
        f"wrote {report.html}, {report.markdown} and {len(report.csv)} CSV table(s) "
        f"({len(report.figures)} figures)",
        file=sys.stderr,
    )
    return 0


def add_score_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--held-out-rule",
        action="store_true",
        help="AlgoPerf v0.5: a base workload counts only if the held-out variant's "
        "target is reached too, both within 4x of the fastest solver",
    )
    p.add_argument(
        "--seed-gate",
        action="store_true",
        help="a workload counts only where the workload's seed gate passes "
        "(n seeds, margin; see `optbench list`)",
    )


def cmd_score(args: argparse.Namespace) -> int:
    from harness.cli import _one_search, _read_trials
    from harness.errors import UsageError
    from harness.results import ResultsStore
    from reports.scoring import integrate_profiles, performance_profiles, workload_times
    from reports.stats import gated_workload_times

    trials = _read_trials(args.results)
    _one_search(trials, args.ruleset, args.results)
    select = {
        "ruleset": args.ruleset,
        "hardware_class": args.hardware_class,
        "held_out_rule": args.held_out_rule,
    }
    try:
        if args.seed_gate:
            times = gated_workload_times(trials, ResultsStore(args.results).read_evals(), **select)
        else:
            times = workload_times(trials, **select)
    except UsageError as exc:  # which trials to score: say in which results folder
        raise UsageError(f"{args.results}: {exc}") from None
    scores = integrate_profiles(performance_profiles(times))
    for submission, score in sorted(scores.items(), key=lambda item: (-item[1], item[0])):
        print(f"{submission}\t{score:.4f}")
    return 0
