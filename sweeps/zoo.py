"""The zoo check: every reference submission, at its literature defaults, on every smoke workload.

Each reference's search space is centred on its optimizer's literature defaults (its lr range
where a learning-rate sweep, `sweeps.lr_sweep`, did not place it elsewhere; submissions/README.md),
so its centre point (`SearchSpace.center()`) is what a user gets without tuning. This trains that
point once per (reference, workload) under the workload's own budget (the per-trial budget every
ruleset grants), stopping at the target, through Ray Tune into a results store (resumable: finished
trials are kept).
`zoo_table` turns the store into the Markdown table `submissions/ZOO-SMOKE.md` commits.

    python -m sweeps.zoo --results results/zoo --out submissions/ZOO-SMOKE.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from harness.submission import load_submission, reference_dir
from harness.trial import TrialSpec
from sweeps.rulesets import ExternalRuleset, WorkloadAtScale

__all__ = [
    "RULESET",
    "missed_pairs",
    "reference_names",
    "tuning_specs",
    "zoo_specs",
    "zoo_table",
]

RULESET = "zoo-centre"


def reference_names() -> list[str]:
    """Every reference submission folder, the example excluded."""
    folders = sorted(p.parent.name for p in reference_dir().glob("*/submission.py"))
    return [name for name in folders if not name.startswith("example-")]


def zoo_specs(
    submissions: list[str],
    workloads: list[str],
    data_dir: str,
    seed: int = 0,
    command_line: str = "",
) -> list[TrialSpec]:
    """One trial per (submission, workload) at the submission's search-space centre."""
    specs = []
    for name in submissions:
        point = load_submission(name).search_space.center()
        for workload in workloads:
            specs.append(
                TrialSpec(
                    workload=workload,
                    scale="smoke",
                    submission=name,
                    hparams_json=TrialSpec.canonical_hparams(point),
                    seed=seed,
                    data_dir=data_dir,
                    ruleset=RULESET,
                    command_line=command_line,
                )
            )
    return specs


def missed_pairs(trials: pd.DataFrame) -> list[tuple[str, str]]:
    """(submission, workload) pairs whose latest centre trial did not reach the target."""
    centre = _latest(trials[trials["ruleset"] == RULESET])
    missed = centre[centre["status"] != "target_reached"]
    return sorted(zip(missed["submission"], missed["workload"], strict=True))


def tuning_specs(
    pairs: list[tuple[str, str]], num_trials: int, data_dir: str, command_line: str = ""
) -> list[TrialSpec]:
    """One external-ruleset study of `num_trials` for each pair the defaults missed."""
    ruleset = ExternalRuleset(num_trials=num_trials, num_studies=1)
    specs = []
    for name, workload in pairs:
        space = load_submission(name).search_space
        specs += ruleset.plan(
            name, space, [WorkloadAtScale(workload, "smoke")], data_dir, command_line
        )
    return specs


def _latest(rows: pd.DataFrame) -> pd.DataFrame:
    """The newest row per (submission, workload)."""
    return rows.sort_values("created_utc").groupby(["submission", "workload"]).tail(1)


def _cell(row: pd.Series) -> str:
    if row["status"] == "target_reached":
        return f"✓ {int(row['steps_to_target'])} / {row['time_to_target_s']:.1f}s"
    if row["status"] == "budget_exhausted":
        return f"✗ {row['best_metric']:.3g} ({int(row['steps'])} st)"
    return str(row["status"])


def zoo_table(trials: pd.DataFrame) -> str:
    """Markdown: one row per submission, one column per workload.

    A cell is the centre trial's result: `✓ steps / s` (reached the target at that step and
    training time), `✗ best (steps)` (budget exhausted; the best metric reached), or the status
    (failed, diverged); where the defaults missed and a tuning study ran, `→ tuned k/N` follows
    (k of its N trials reached the target).
    """
    centre = _latest(trials[trials["ruleset"] == RULESET]).set_index(["submission", "workload"])
    tuned = trials[trials["ruleset"] == "external"]
    workloads = sorted(centre.index.get_level_values("workload").unique())
    lines = [
        "| submission | " + " | ".join(workloads) + " | at defaults | tuned |",
        "|---" * (len(workloads) + 3) + "|",
    ]
    for name in sorted(centre.index.get_level_values("submission").unique()):
        cells, at_defaults, after_tuning = [], 0, 0
        for workload in workloads:
            if (name, workload) not in centre.index:
                cells.append("–")
                continue
            row = centre.loc[(name, workload)]
            cell = _cell(row)
            reached = row["status"] == "target_reached"
            at_defaults += reached
            study = tuned[
                (tuned["submission"] == name)
                & (tuned["workload"] == workload)
                & (tuned["submission_hash"] == row["submission_hash"])
            ]
            if not reached and len(study):
                hits = int((study["status"] == "target_reached").sum())
                cell += f" → tuned {hits}/{len(study)}"
                reached = hits > 0
            after_tuning += reached
            cells.append(cell)
        total = len(workloads)
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {at_defaults}/{total} | {after_tuning}/{total} |"
        )
    return "\n".join(lines) + "\n"


def _header(trials: pd.DataFrame) -> str:
    """Where the table's numbers come from: the trials' commits, machine and dates."""
    commits = ", ".join(sorted(trials["git_commit"].astype(str).str[:10].unique()))
    machines = ", ".join(sorted(trials["cpu_model"].astype(str).unique()))
    first, last = trials["created_utc"].min(), trials["created_utc"].max()
    return (
        "# Zoo check: every reference at its defaults, then tuned, on every smoke workload\n\n"
        f"{len(trials)} trials, {first} to {last}, commit(s) {commits}, on {machines}; one torch\n"
        "thread per trial, two trials at once. Cell: `✓ step / training s` where the target was\n"
        "reached at the defaults, else `✗ best metric (steps run)`, then `→ tuned k/N` "
        "(k of the N\n"
        "trials of the external-ruleset study reached it). See README.md for why the misses "
        "miss.\n\n"
    )


def main(argv: list[str] | None = None) -> int:
    from harness.atomic import write_text_atomic
    from harness.commandline import default_data_dir
    from harness.results import ResultsStore
    from sweeps.driver import run_sweep
    from workloads import WORKLOADS

    parser = argparse.ArgumentParser(
        prog="python -m sweeps.zoo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", default="results/zoo", help="results root")
    parser.add_argument("--submissions", default="", help="comma-separated (default: all)")
    parser.add_argument("--workloads", default="", help="comma-separated (default: all)")
    parser.add_argument("--data-dir", default=default_data_dir(), help="prepared datasets")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--tune-misses",
        type=int,
        default=0,
        metavar="N",
        help="for each pair the defaults miss, one external-ruleset study of N trials",
    )
    parser.add_argument("--out", default="", help="write the Markdown table here")
    args = parser.parse_args(argv)
    names = [s for s in args.submissions.split(",") if s] or reference_names()
    workloads = [w for w in args.workloads.split(",") if w] or sorted(WORKLOADS)
    specs = zoo_specs(
        names, workloads, str(Path(args.data_dir).resolve()), command_line=" ".join(sys.argv)
    )
    run_sweep(specs, args.results, num_cpus=args.cpus)
    if args.tune_misses:
        missed = missed_pairs(ResultsStore(args.results).read_trials())
        missed = [(n, w) for n, w in missed if n in names and w in workloads]
        tuning = tuning_specs(missed, args.tune_misses, specs[0].data_dir, specs[0].command_line)
        run_sweep(tuning, args.results, num_cpus=args.cpus)
    trials = ResultsStore(args.results).read_trials()
    table = zoo_table(trials)
    if args.out:
        write_text_atomic(args.out, _header(trials) + table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
