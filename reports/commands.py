"""The subcommands the reports own: `score`, `leaderboard`, `report` and `import-algoperf`.

`write_leaderboard` is also how a sweep (`sweeps.commands`) ends: the same tables, files and
checks as `optbench leaderboard`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.commandline import Commands, add_results, positive
from harness.errors import UsageError
from harness.outputs import (
    LEADERBOARD_FILES,
    check_files_in,
    check_results_root,
    write_output_text,
)
from harness.results import ResultsStore
from harness.trial import search_algorithm

__all__ = ["leaderboard_folder", "read_trials", "register", "write_leaderboard"]

_CPU_PEAK_NOTE = (
    "Peak memory on CPU is the trial process's resident high-water mark (VmHWM) above its resident "
    "set before the model was built: it includes runtime memory that comes with a framework, such "
    "as JAX/XLA's compiler and allocator arenas for optax submissions. Parameter, gradient and "
    "optimizer-state bytes are exact counts from the tensors."
)


def read_trials(results: str) -> Any:
    """The trials of the store at `results`, as a DataFrame.

    Raises:
      UsageError: the folder does not exist or holds no trials.
    """
    if Path(results).exists() and not Path(results).is_dir():
        raise UsageError(f"results folder {results!r} is a file, not a folder")
    if not Path(results).is_dir():
        raise UsageError(f"results folder {results!r} does not exist")
    trials = ResultsStore(results).read_trials()
    if trials.empty:
        raise UsageError(f"results folder {results!r} holds no trials")
    return trials


def _one_search(trials: Any, ruleset: str | None, results: str) -> None:
    """Refuses to score trials tuned by different search algorithms together.

    Raises:
      UsageError: naming the algorithms found and how to select one ruleset.
    """
    chosen = trials if ruleset is None else trials[trials["ruleset"] == ruleset]
    for name, group in chosen.groupby("ruleset"):
        found = {search_algorithm(text) for text in group["ruleset_json"]}
        if len(found) > 1:
            raise UsageError(
                f"{results}: the {name} trials mix search algorithms "
                f"({', '.join(sorted(found))}); a leaderboard compares submissions "
                "tuned by one: keep each algorithm in its own results folder"
            )


def leaderboard_folder(results: str, out: str | None) -> tuple[Path, str]:
    """Where a leaderboard goes (`out`, else the results root) and the flag naming it in
    messages, once checked: leaderboard.md and .html there may be replaced (`harness.outputs`).

    Raises:
      UsageError: the folder is a file or read-only, lies in the store's own folders, or holds a
        leaderboard.md or .html that optbench did not write.
    """
    folder, flag = (Path(out), "--out") if out else (Path(results), "--results")
    check_files_in(folder, LEADERBOARD_FILES, flag, results_root=results)
    return folder, flag


def write_leaderboard(
    results: str,
    out: str | None,
    ruleset: str | None,
    hardware_class: str | None,
    highlight: str | None = None,
) -> int:
    """Writes leaderboard.md and .html of the store at `results` (into `out`, else the store's
    root) and prints the Markdown, with `highlight`'s score after it; returns exit status 0."""
    from reports.leaderboard import leaderboard_table, render_html, render_markdown

    trials = read_trials(results)
    folder, flag = leaderboard_folder(results, out)  # before anything is computed or written
    _one_search(trials, ruleset, results)
    try:
        table = leaderboard_table(trials, ruleset=ruleset, hardware_class=hardware_class)
    except UsageError as exc:  # which trials compare: say in which results folder
        raise UsageError(f"{results}: {exc}") from None
    title = f"optbench leaderboard ({results})"
    on_cpu = trials["peak_source"].astype("string").str.startswith("vmhwm").any()
    notes = [_CPU_PEAK_NOTE] if on_cpu else []
    markdown = render_markdown(table, title) + "".join(f"\n{note}\n" for note in notes)
    html = render_html(table, title, notes=notes)
    for name, text in (("leaderboard.md", markdown), ("leaderboard.html", html)):
        write_output_text(folder / name, text, LEADERBOARD_FILES[name], flag)
    print(markdown)
    if highlight is not None:
        print(
            f"\n{highlight}: score {table.loc[highlight, 'score']:.4f}"
            if highlight in table.index
            else f"\n{highlight}: no trials recorded"
        )
    print(f"wrote {folder / 'leaderboard.md'} and {folder / 'leaderboard.html'}", file=sys.stderr)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    return write_leaderboard(args.results, args.out, args.ruleset, args.hardware_class)


def cmd_score(args: argparse.Namespace) -> int:
    from reports.scoring import integrate_profiles, performance_profiles, workload_times
    from reports.stats import gated_workload_times

    trials = read_trials(args.results)
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


def cmd_report(args: argparse.Namespace) -> int:
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


def cmd_import_algoperf(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from reports.algoperf_import import ALGOPERF_LAYOUT, import_algoperf

    log_dir = Path(args.log_dir)
    if not log_dir.is_dir():
        raise UsageError(f"AlgoPerf log folder {str(log_dir)!r} does not exist")
    check_results_root(args.results)  # before any log is read
    with tqdm(desc="reading AlgoPerf logs", unit="csv", disable=None, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        summary = import_algoperf(
            log_dir,
            ResultsStore(args.results),
            Path(args.targets) if args.targets else None,
            held_out_path=Path(args.held_out) if args.held_out else None,
            ruleset=args.ruleset,
            on_progress=progress,
        )
    found = ", ".join(f"{n} {name}" for name, n in summary.rulesets.items() if n)
    print(
        f"targets: {summary.targets_path} (AlgoPerf {summary.benchmark_version}); held out: "
        f"{', '.join(summary.held_out) or 'none'} (from {summary.held_out_source})",
        file=sys.stderr,
    )
    if summary.unscored_variants:
        print(
            f"variants not on the held-out list (stored, never scored): "
            f"{', '.join(summary.unscored_variants)}",
            file=sys.stderr,
        )
    if summary.outside_layout:
        print(
            f"left out {len(summary.outside_layout)} eval_measurements.csv outside AlgoPerf's "
            f"layout {ALGOPERF_LAYOUT} (first: {summary.outside_layout[0]})",
            file=sys.stderr,
        )
    print(
        f"imported {summary.written} new trial(s) ({found} found, {summary.already_stored} "
        f"already stored) from {log_dir} into {args.results}"
    )
    return 0


# -- registration ------------------------------------------------------------------------------


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ruleset", default=None, help="score only trials of this ruleset")
    p.add_argument(
        "--hardware-class",
        default=None,
        help="score only trials of this hardware class (needed when the store mixes)",
    )


def register(commands: Commands) -> None:
    from reports.report import KINDS

    p = commands.add(
        "score",
        cmd_score,
        "AlgoPerf performance-profile scores of a results store",
        "optbench score --results results\n"
        "optbench score --results algoperf-results --held-out-rule\n"
        "optbench score --results results --seed-gate",
    )
    add_results(p)
    _add_selection(p)
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

    p = commands.add(
        "leaderboard",
        cmd_leaderboard,
        "write leaderboard.md and leaderboard.html",
        "optbench leaderboard --results results --out site/",
    )
    add_results(p)
    _add_selection(p)
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: the results root); a leaderboard.md or .html "
        "there is replaced only if optbench wrote it",
    )

    p = commands.add(
        "report",
        cmd_report,
        "fixed-model, fixed-resource, Pareto or scaling report "
        "(HTML with figures, Markdown, CSV) from a results store",
        "optbench report fixed-model --results results/smoke --out reports-out/fixed-model\n"
        "optbench report fixed-resource --results results/resource --reference adamw\n"
        "optbench report scaling --results results/scaling --workload nanogpt --scale smoke\n"
        "optbench report pareto --results results/smoke --workload digits",
    )
    p.add_argument("kind", choices=KINDS, help="which report")
    add_results(p)
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
        type=positive,
        default=2000,
        help="bootstrap resamples for confidence intervals (default: %(default)s)",
    )

    p = commands.add(
        "import-algoperf",
        cmd_import_algoperf,
        "import AlgoPerf eval_measurements.csv logs into a results store",
        "optbench import-algoperf logs/external_tuning --results algoperf-results\n"
        "optbench import-algoperf previous_leaderboards/algoperf_v05/logs/external_tuning "
        "--results v05\n"
        "optbench import-algoperf runs/self_tuning --targets workload_targets_v05.json "
        "--held-out held_out_workloads.json",
    )
    p.add_argument(
        "log_dir",
        help="folder holding <submission>/study_<k>/<workload>_<framework>/"
        "trial_<i>/ (or external_tuning/ and self_tuning/ folders of them)",
    )
    p.add_argument(
        "--targets",
        default=None,
        metavar="FILE",
        help="AlgoPerf workload targets JSON (default: found beside LOG_DIR, or in the "
        "scoring/ folder of the AlgoPerf results checkout holding it)",
    )
    p.add_argument(
        "--held-out",
        default=None,
        metavar="FILE",
        help="AlgoPerf's held-out workloads JSON (a list of variant names), as published "
        "(default: the targets file's held_out_workloads)",
    )
    p.add_argument(
        "--ruleset",
        choices=("external", "self"),
        default=None,
        help="ruleset of the logs (default: self under a self_tuning folder, else external)",
    )
    add_results(p)
