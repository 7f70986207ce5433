"""The `optbench report` command: options and action (the reports themselves: `reports.report`)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["REPORT_EXAMPLE", "add_report_options", "cmd_report"]

REPORT_EXAMPLE = (
    "optbench report fixed-model --results results/smoke --out reports-out/fixed-model\n"
    "  optbench report fixed-resource --results results/resource --reference adamw\n"
    "  optbench report scaling --results results/scaling --workload nanogpt --scale smoke\n"
    "  optbench report pareto --results results/smoke --workload digits"
)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_report_options(p: argparse.ArgumentParser) -> None:
    from reports.report import KINDS

    p.add_argument("kind", choices=KINDS, help="which report")
    p.add_argument("--results", default="results", help="results root (default: %(default)s)")
    p.add_argument("--out", default=None,
                   help="output folder (default: RESULTS/report-KIND); replaced atomically")  # fmt: skip
    p.add_argument("--reference", default=None,
                   help="submission that speedups are measured against (default: adamw)")  # fmt: skip
    p.add_argument("--workload", default=None, help="only this workload (scaling: required)")
    p.add_argument("--scale", default=None,
                   help="only this scale (scaling: the ladder's base scale, e.g. smoke)")  # fmt: skip
    p.add_argument("--hardware-class", default=None,
                   help="only trials of this hardware class (needed when the store mixes them)")  # fmt: skip
    p.add_argument("--bootstrap", type=_positive, default=2000,
                   help="bootstrap resamples for confidence intervals (default: %(default)s)")  # fmt: skip


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from reports.report import build_report

    out = Path(args.out) if args.out else Path(args.results) / f"report-{args.kind}"
    report = build_report(args.kind, args.results, out, reference=args.reference,
                          workload=args.workload, scale=args.scale,
                          hardware_class=args.hardware_class, n_boot=args.bootstrap,
                          command_line=args.command_line)  # fmt: skip
    print(f"wrote {report.html}, {report.markdown} and {len(report.csv)} CSV table(s) "
          f"({len(report.figures)} figures)", file=sys.stderr)
    return 0
