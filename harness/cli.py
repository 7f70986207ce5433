"""The `optbench` command line. Configuration enters here, once, as frozen specs.

Every command's `--help` shows an example. Errors caused by input print one line naming what and
where, and exit with status 2 before anything is written.

Longer than the house's ~500 lines, because the parser and the action of most subcommands live
here, the sweep commands' in `sweeps.cli`, the report's in `reports.cli`: each subcommand belongs
with the package that owns it, and that is where they are to move.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness.errors import OptbenchError, UsageError
from reports.cli import REPORT_EXAMPLE, add_report_options, add_score_options, cmd_report, cmd_score

__all__ = ["main"]

REFERENCES = ("adamw", "sgd-nesterov", "muon", "adamw-optax")
DEFAULT_WORKLOADS = "digits,nanogpt"


def default_data_dir() -> str:
    return os.environ.get("OPTBENCH_DATA_DIR", str(Path.home() / ".cache" / "optbench" / "data"))


def _command_line(argv: Sequence[str]) -> str:
    return shlex.join(["optbench", *argv])


# -- commands ----------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from harness.submission import load_submission, reference_dir
    from workloads import WORKLOADS

    print("workloads:")
    for name, cls in sorted(WORKLOADS.items()):
        for scale, config in cls.configs.items():
            if cls.base_scale_of(scale) != scale:
                continue  # a ladder's rung: listed on its base scale's ladder line
            t = config.target
            print(
                f"  {name}@{scale} v{cls.version}: {t.metric} {'<=' if t.direction == 'min' else '>='}"
                f" {t.value:g}, budget {config.budget.max_steps} steps, batch {config.batch_size}"
            )
            if scale in cls.ladders:
                batches = ", ".join(map(str, cls.ladder_batches.get(scale, ())))
                print(f"    ladder: {', '.join(cls.ladder_scales(scale))}; batches {batches}")
    print("reference submissions:")
    for folder in sorted(p.parent for p in reference_dir().glob("*/submission.py")):
        loaded = load_submission(folder)
        print(f"  {loaded.name} ({loaded.level}, {loaded.search_space.num_dims} search dims)")
    return 0


# `validate` builds a level-1 optimizer on digits@smoke's parameters: the cheapest workload to
# set up (scikit-learn's bundled digits, no download), and its 10 tensors carry five roles (conv,
# norm, matrix, bias, head), enough for a role-based split to show a parameter it drops or repeats.
VALIDATE_WORKLOAD = ("digits", "smoke")


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.precheck import check_submission
    from harness.submission import load_submission
    from workloads import get_workload

    loaded = load_submission(args.submission, allow_self_tuning=True)
    loaded.search_space.validate_point(loaded.search_space.center())
    name, scale = VALIDATE_WORKLOAD
    count = check_submission(loaded, get_workload(name, scale, Path(args.data_dir)))
    is_built = loaded.level == "factory"
    built = f"optimizer built on {name}@{scale}'s {count} parameters; " if is_built else ""
    space = (
        f"search space of {loaded.search_space.num_dims} dims"
        if not loaded.is_self_tuning
        else "self-tuning, no search space: runs with --ruleset self"
    )
    print(f"{loaded.folder}: ok ({loaded.level}; {space}; {built}source {loaded.source_hash[:12]})")
    return 0


def _workloads(text: str, scale: str) -> list[Any]:
    from sweeps.rulesets import WorkloadAtScale
    from workloads import get_workload

    names = [w.strip() for w in text.split(",") if w.strip()]
    if not names:
        raise UsageError("--workloads names no workload")
    for name in names:  # refuses an unknown name or scale; builds nothing
        get_workload(name, scale, Path(default_data_dir()))
    return [WorkloadAtScale(name, scale) for name in names]


def _parse_hparams(pairs: list[str], base: dict[str, Any]) -> dict[str, Any]:
    point = dict(base)
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--hp {pair!r}: expected NAME=VALUE")
        if key in given:
            raise UsageError(
                f"--hp {key} is given twice ({key}={given[key]} and {pair}): give "
                "each hyperparameter once"
            )
        given[key] = value
        try:
            point[key] = json.loads(value)
        except json.JSONDecodeError:
            point[key] = value
    return point


def cmd_run(args: argparse.Namespace) -> int:
    from harness.isolation import run_isolated
    from harness.outputs import check_results_root
    from harness.precheck import check_trial
    from harness.submission import load_submission
    from harness.trial import TrialSpec

    workload = _workloads(args.workload, args.scale)[0]
    is_self = args.ruleset == "self"
    loaded = load_submission(args.submission, allow_self_tuning=is_self)
    if loaded.is_self_tuning and args.hp:
        raise UsageError(
            f"--hp {args.hp[0]}: {loaded.folder} is self-tuning (no search space); "
            "its hyperparameters are fixed in its code"
        )
    hp = _parse_hparams(args.hp, loaded.search_space.center())
    loaded.search_space.validate_point(hp)
    # "single" and "{}" are TrialSpec's defaults, so the ids of other `run` trials stay as they were.
    ruleset_json = json.dumps({"name": "self"}) if is_self else "{}"
    spec = TrialSpec(
        workload=workload.name,
        scale=workload.scale,
        submission=str(loaded.folder),
        hparams_json=TrialSpec.canonical_hparams(hp),
        seed=args.seed,
        data_dir=args.data_dir,
        max_steps=args.max_steps,
        num_threads=args.threads,
        world_size=args.processes,
        device=args.device,
        command_line=args.command_line,
        ruleset=args.ruleset,
        ruleset_json=ruleset_json,
    )
    _check_device(args.device)
    check_results_root(args.results)  # a store that cannot be written: refused before training
    check_trial(spec)  # the user's mistakes are refused here, before the trial's process starts
    print(f"running {loaded.name} on {workload.name}@{workload.scale} with {hp}", file=sys.stderr)
    results = str(Path(args.results).resolve())
    (summary,) = run_isolated([spec], results)
    _refuse_if_needs_cuda(summary, results)
    print(json.dumps(summary, indent=2))
    return 0


def _refuse_if_needs_cuda(summary: dict[str, Any], results: str) -> None:
    """Ends `optbench run` with one line when its trial failed because the submission needs CUDA
    this machine (or the trial's device) lacks (`harness.needs_cuda`); the failed trial stays in
    the store, as every trial does.

    Raises:
      UsageError: the trial's recorded error is such a failure (its first line is the message).
    """
    from harness.needs_cuda import needs_cuda_line
    from harness.results import ResultsStore

    if summary["status"] != "failed":
        return
    trials = ResultsStore(results).read_trials()
    errors = trials.loc[trials["trial_id"] == summary["trial_id"], "error"]
    line = needs_cuda_line(errors.iloc[0]) if len(errors) else None
    if line is not None:
        raise UsageError(line)


def _read_trials(results: str) -> Any:
    from harness.results import ResultsStore

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
    from harness.trial import search_algorithm

    chosen = trials if ruleset is None else trials[trials["ruleset"] == ruleset]
    for name, group in chosen.groupby("ruleset"):
        found = {search_algorithm(text) for text in group["ruleset_json"]}
        if len(found) > 1:
            raise UsageError(
                f"{results}: the {name} trials mix search algorithms "
                f"({', '.join(sorted(found))}); a leaderboard compares submissions "
                "tuned by one: keep each algorithm in its own results folder"
            )


_CPU_PEAK_NOTE = (
    "Peak memory on CPU is the trial process's resident high-water mark (VmHWM) above its resident "
    "set before the model was built: it includes runtime memory that comes with a framework, such "
    "as JAX/XLA's compiler and allocator arenas for optax submissions. Parameter, gradient and "
    "optimizer-state bytes are exact counts from the tensors."
)


def _leaderboard_folder(args: argparse.Namespace) -> tuple[Path, str]:
    """Where `args`' leaderboard goes (--out, else the results root) and the flag naming it in
    messages, once checked: leaderboard.md and .html there may be replaced (`harness.outputs`).

    Raises:
      UsageError: the folder is a file or read-only, lies in the store's own folders, or holds a
        leaderboard.md or .html that optbench did not write.
    """
    from harness.outputs import LEADERBOARD_FILES, check_files_in

    out = getattr(args, "out", None)
    folder, flag = (Path(out), "--out") if out else (Path(args.results), "--results")
    check_files_in(folder, LEADERBOARD_FILES, flag, results_root=args.results)
    return folder, flag


def _write_leaderboard(args: argparse.Namespace, highlight: str | None) -> int:
    from harness.outputs import LEADERBOARD_FILES, write_output_text
    from reports.leaderboard import leaderboard_table, render_html, render_markdown

    trials = _read_trials(args.results)
    out, flag = _leaderboard_folder(args)  # before anything is computed or written
    _one_search(trials, args.ruleset, args.results)
    try:
        table = leaderboard_table(trials, ruleset=args.ruleset, hardware_class=args.hardware_class)
    except UsageError as exc:  # which trials compare: say in which results folder
        raise UsageError(f"{args.results}: {exc}") from None
    title = f"optbench leaderboard ({args.results})"
    notes = (
        [_CPU_PEAK_NOTE]
        if trials["peak_source"].astype("string").str.startswith("vmhwm").any()
        else []
    )
    markdown = render_markdown(table, title) + "".join(f"\n{note}\n" for note in notes)
    html = render_html(table, title, notes=notes)
    for name, text in (("leaderboard.md", markdown), ("leaderboard.html", html)):
        write_output_text(out / name, text, LEADERBOARD_FILES[name], flag)
    print(markdown)
    if highlight is not None:
        print(
            f"\n{highlight}: score {table.loc[highlight, 'score']:.4f}"
            if highlight in table.index
            else f"\n{highlight}: no trials recorded"
        )
    print(f"wrote {out / 'leaderboard.md'} and {out / 'leaderboard.html'}", file=sys.stderr)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    return _write_leaderboard(args, highlight=None)


def cmd_import_algoperf(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from harness.outputs import check_results_root
    from harness.results import ResultsStore
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


def cmd_bench_overhead(args: argparse.Namespace) -> int:
    from harness.overhead import measure_overhead
    from workloads import get_workload

    get_workload(args.workload, "smoke", Path(args.data_dir))  # refused before the banner
    if args.output:  # as is an output that may not be written (the JSON goes beside it)
        from harness.outputs import BENCH_OVERHEAD_JSON, BENCH_OVERHEAD_MD, check_output

        check_output(args.output, BENCH_OVERHEAD_MD, "--output")
        check_output(Path(args.output).with_suffix(".json"), BENCH_OVERHEAD_JSON, "--output")
    print(
        f"overhead: {args.workload}@smoke, {args.steps} steps, {args.repeats} repeats, "
        "1 torch thread ...",
        file=sys.stderr,
    )
    result = measure_overhead(
        args.workload, Path(args.data_dir), args.steps, args.repeats, command_line=args.command_line
    )
    print(result.markdown(), end="")
    if args.output:
        from harness.overhead import write_report

        sidecar = write_report(result, Path(args.output))
        print(f"wrote {args.output} and {sidecar}", file=sys.stderr)
    return 0


def cmd_bench_optimizers(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from harness.bench_optimizers import (
        BenchConfig,
        check_output_path,
        run_benchmark,
        select_submissions,
        write_report,
    )

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda: no CUDA device is available to torch {torch.__version__}")
    folders = select_submissions(args.submissions)  # refuses an unknown name before measuring
    if args.output:
        check_output_path(Path(args.output))  # and an output that may not be written
    if args.threads is not None or device == "cpu":  # one thread on CPU: steadier on a busy box
        torch.set_num_threads(args.threads or 1)
    config = BenchConfig(
        device=device,
        scale=args.scale or ("full" if device == "cuda" else "reduced"),
        steps=args.steps,
        repeats=args.repeats,
        warmup=args.warmup,
    )
    print(
        f"bench optimizers: {len(folders)} submission(s) on {device}, {config.scale} shapes, "
        f"{config.warmup} + {config.repeats} x {config.steps} steps ...",
        file=sys.stderr,
    )
    bar = tqdm(total=len(folders), desc="bench optimizers", unit="submission", disable=args.quiet)
    with bar:
        report = run_benchmark(
            config,
            folders,
            args.command_line,
            on_start=bar.set_postfix_str,
            on_done=lambda _: bar.update(),
        )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.markdown())
    if args.output:
        sidecar = write_report(report, Path(args.output))
        print(f"wrote {args.output} and {sidecar}", file=sys.stderr)
    return 0


def _writable_folder(path: Path, flag: str) -> None:
    """Refuses `path` unless it is a folder, or can be made one, that this process may write
    (`harness.outputs.check_writable_folder`).

    Raises:
      UsageError: naming `flag` and the part of `path` that is in the way.
    """
    from harness.outputs import check_writable_folder

    check_writable_folder(path, flag)


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from workloads.datasets import DATASETS, prepare

    if args.name not in DATASETS:  # before the folder check and any download
        raise UsageError(f"unknown dataset {args.name!r} (known: {', '.join(sorted(DATASETS))})")
    _writable_folder(Path(args.dir), "--dir")
    folder = prepare(args.name, Path(args.dir), train_shards=args.train_shards, mirror=args.mirror)
    print(f"{args.name}: prepared in {folder}")
    return 0


def cmd_sysinfo(args: argparse.Namespace) -> int:
    import torch

    from harness.provenance import collect_provenance

    info = collect_provenance("cpu")
    info["cpu_count"] = os.cpu_count()
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
    for key, value in info.items():
        print(f"{key}: {value}")
    return 0


# -- parser ------------------------------------------------------------------------------------


def cmd_calibrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from harness.outputs import check_results_root
    from harness.precheck import check_trial
    from sweeps.calibrate import calibrate, calibration_specs
    from workloads import WORKLOADS

    name = _workloads(args.workload, args.scale)[0].name  # refuses an unknown name or scale
    reference = WORKLOADS[name].reference_hparams.get(args.scale)
    if not reference:
        raise UsageError(f"workload {name!r} declares no reference point at scale {args.scale!r}")
    specs = calibration_specs(
        name, args.scale, args.seeds, args.data_dir, args.device, command_line=args.command_line
    )
    _check_device(args.device)
    check_results_root(args.results)
    check_trial(specs[0])  # the data and the reference point; the seeds differ only in seed
    print(
        f"calibrating {name}@{args.scale}: reference AdamW {reference} x {args.seeds} seeds "
        f"-> {args.results}",
        file=sys.stderr,
    )
    with tqdm(total=len(specs), desc="calibration trials", unit="trial") as bar:
        report = calibrate(specs, args.results, args.parallel, on_done=lambda _: bar.update())
    print(report.markdown())
    return 0


def _add_results(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="results root (default: %(default)s)")


def _add_selection(p: argparse.ArgumentParser, ruleset: str | None) -> None:
    p.add_argument("--ruleset", default=ruleset, help="score only trials of this ruleset")
    p.add_argument(
        "--hardware-class",
        default=None,
        help="score only trials of this hardware class (needed when the store mixes)",
    )


def _integer(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum`; anything else is refused in the flag's words
    (`argument --threads: must be an integer >= 1, got '0'`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


_positive = _integer(1)
_nonnegative = _integer(0)
_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def _device(text: str) -> str:
    """An argparse type: a torch device this harness runs on (`cpu`, `cuda`, `cuda:N`)."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, got {text!r}")
    return text


def _check_device(device: str) -> None:
    """Refuses a CUDA `--device` this machine cannot give (before anything starts).

    Raises:
      UsageError: no CUDA device is visible, or `cuda:N` names one past the visible count.
    """
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        raise UsageError(
            f"--device {device}: no CUDA device is available to torch "
            f"{torch.__version__}; use --device cpu"
        )
    index, count = torch.device(device).index, torch.cuda.device_count()
    if index is not None and index >= count:
        raise UsageError(
            f"--device {device}: {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1})"
        )


def _markdown_file(text: str) -> str:
    """An output path for a Markdown report: a `.md` file whose folders are not files."""
    path = Path(text)
    if path.suffix != ".md":
        raise argparse.ArgumentTypeError(f"{text!r}: give a .md file (the JSON goes beside it)")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {str(blocking)!r} is a file, not a folder")
    return text


_EXAMPLES = {
    "list": "optbench list",
    "validate": "optbench validate submissions/adamw",
    "run": "optbench run adamw --workload digits --hp lr=0.003 --seed 1\n"
    "  optbench run muon --workload nanogpt --scale full --device cuda --processes 8\n"
    "  optbench run path/to/self-tuning-submission --workload digits --ruleset self",
    "sweep": "optbench sweep adamw muon --workloads digits,nanogpt --trials 5 --studies 3\n"
    "  optbench sweep adamw muon --launcher slurm --cluster gpu-example --results runs/a\n"
    "  optbench sweep --resume --results runs/a\n"
    "  optbench sweep adamw muon --workloads nanogpt --track fixed-resource "
    "--memory-cap 512MiB --time-budget-s 20",
    "scaling": "optbench scaling nanogpt --scale smoke --submissions adamw,muon --trials 4 "
    "--studies 2 --results runs/scaling --reference adamw",
    "status": "optbench status --results runs/a",
    "submit": "optbench submit path/to/my-optimizer --trials 4 --studies 2",
    "score": "optbench score --results results\n"
    "  optbench score --results algoperf-results --held-out-rule\n"
    "  optbench score --results results --seed-gate",
    "leaderboard": "optbench leaderboard --results results --out site/",
    "import-algoperf": "optbench import-algoperf logs/external_tuning --results algoperf-results\n"
    "  optbench import-algoperf previous_leaderboards/algoperf_v05/logs/"
    "external_tuning --results v05\n"
    "  optbench import-algoperf runs/self_tuning --targets "
    "workload_targets_v05.json --held-out held_out_workloads.json",
    "sysinfo": "optbench sysinfo",
    "bench-overhead": "optbench bench-overhead --workload nanogpt --steps 200 --repeats 5",
    "bench": "optbench bench optimizers --device cuda --output bench/optimizers.md",
    "bench optimizers": "optbench bench optimizers --submissions muon,lion --output bench.md",
    "calibrate": "optbench calibrate cifar10-94 --scale full --seeds 20 --device cuda",
    "data": "optbench data prepare cifar10",
    "report": REPORT_EXAMPLE,
    "data prepare": "optbench data prepare fineweb10B --train-shards 8 --dir /scratch/optbench-data",
}


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (the house rule), pointing at `--help`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="optbench",
        description="Optimizer benchmarking: fixed workloads, equal tuning budgets, honest clocks.",
        epilog="example:\n  optbench submit submissions/example-nadamw --trials 4 --studies 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example:\n  {_EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    command("list", cmd_list, "list workloads and reference submissions")
    p = command(
        "validate",
        cmd_validate,
        "check a submission folder against the contract "
        "(a level-1 optimizer is built on digits@smoke's parameters)",
    )
    p.add_argument("submission", help="submission folder or reference name")
    p.add_argument("--data-dir", default=default_data_dir(), help="where digits' split is cached")

    p = command("run", cmd_run, "run one trial in its own process and store it")
    p.add_argument("submission", help="submission folder or reference name")
    p.add_argument("--workload", required=True, help="workload name")
    p.add_argument("--scale", default="smoke")
    p.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="hyperparameter (repeatable; the rest default to the space's centre)",
    )
    p.add_argument("--seed", type=_nonnegative, default=0, help="model init and data order (>= 0)")
    p.add_argument("--max-steps", type=_positive, default=None, help="override the step budget")
    p.add_argument("--threads", type=_positive, default=1, help="torch CPU threads per process")
    p.add_argument(
        "--processes",
        type=_positive,
        default=1,
        help="data-parallel processes (gloo on CPU, NCCL on GPUs; same global batch)",
    )
    p.add_argument(
        "--device",
        type=_device,
        default="cpu",
        help="torch device: cpu, cuda or cuda:N (default: %(default)s)",
    )
    p.add_argument(
        "--ruleset",
        choices=("single", "self"),
        default="single",
        help="self: record the trial under the self-tuning ruleset; needed for a "
        "submission without a search space (default: %(default)s)",
    )
    p.add_argument("--data-dir", default=default_data_dir())
    _add_results(p)

    from sweeps import cli as sweeps_cli
    from sweeps.cli import add_sweep_options, cmd_status, cmd_submit, cmd_sweep

    p = command("sweep", cmd_sweep, "tune submissions under a ruleset (Ray Tune; local or SLURM)")
    p.add_argument("submissions", nargs="*", help="submission folders or reference names")
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish the sweep recorded in --results (no other options needed)",
    )
    add_sweep_options(p)

    p = command(
        "scaling",
        sweeps_cli.cmd_scaling,
        "sweep submissions on every rung of a workload's model-size ladder; write the "
        "scaling report",
    )
    sweeps_cli.add_scaling_options(p)

    p = command("status", cmd_status, "a sweep's progress per submission x workload, with an ETA")
    _add_results(p)

    p = command(
        "submit", cmd_submit, "sweep one submission and the references; print its leaderboard entry"
    )
    p.add_argument("submission", help="submission folder")
    p.add_argument(
        "--references",
        default=",".join(REFERENCES),
        help="comma-separated reference submissions to compare against",
    )
    add_sweep_options(p)

    p = command("score", cmd_score, "AlgoPerf performance-profile scores of a results store")
    _add_results(p)
    _add_selection(p, ruleset=None)
    add_score_options(p)
    p = command("leaderboard", cmd_leaderboard, "write leaderboard.md and leaderboard.html")
    _add_results(p)
    _add_selection(p, ruleset=None)
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: the results root); a leaderboard.md or .html "
        "there is replaced only if optbench wrote it",
    )

    p = command(
        "report",
        cmd_report,
        "fixed-model, fixed-resource, Pareto or scaling report "
        "(HTML with figures, Markdown, CSV) from a results store",
    )
    add_report_options(p)

    p = command(
        "import-algoperf",
        cmd_import_algoperf,
        "import AlgoPerf eval_measurements.csv logs into a results store",
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
    _add_results(p)
    command("sysinfo", cmd_sysinfo, "print versions, CPU and accelerator")
    p = command(
        "bench-overhead",
        cmd_bench_overhead,
        "time the runner against a minimal hand-written loop (same seed and steps)",
    )
    p.add_argument("--workload", default="digits")
    p.add_argument("--steps", type=_positive, default=200)
    p.add_argument("--repeats", type=_positive, default=3)
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument(
        "--output",
        type=_markdown_file,
        default=None,
        metavar="FILE.md",
        help="also write the Markdown here and the JSON beside it (FILE.json)",
    )

    bench = command("bench", None, "benchmarks of the harness and the submissions")
    kinds = bench.add_subparsers(dest="kind", required=True, metavar="BENCHMARK")
    p = kinds.add_parser(
        "optimizers",
        help="optimizer step time and state memory, vs AdamW",
        description="For every submission (or --submissions): the optimizer step "
        "time and state memory\non a fixed GPT parameter set (GPT-2 small's shapes "
        "on GPU, a reduced set on CPU),\nas ratios to AdamW measured in the same "
        "run. Markdown on stdout; progress on stderr.",
        epilog=f"example:\n  {_EXAMPLES['bench optimizers']}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=cmd_bench_optimizers)
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="torch device (default: cuda when available, else cpu)",
    )
    p.add_argument(
        "--scale",
        choices=("full", "reduced", "tiny"),
        default=None,
        help="parameter set: full = GPT-2 small's shapes (default on cuda), reduced = "
        "width 256, 4 layers, vocab 12288 (default on cpu), tiny = a toy for tests",
    )
    p.add_argument(
        "--submissions",
        default=None,
        metavar="A,B,C",
        help="comma-separated names or folders (default: every reference submission); "
        "adamw, the baseline, is always measured",
    )
    p.add_argument("--steps", type=_positive, default=20, help="timed steps per repeat")
    p.add_argument("--repeats", type=_positive, default=5, help="timed repeats; medians reported")
    p.add_argument(
        "--warmup", type=_nonnegative, default=5, help="untimed steps before the timed ones"
    )
    p.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="torch CPU threads (default: 1 on cpu, torch's default on cuda)",
    )
    p.add_argument(
        "--output",
        default=None,
        metavar="FILE.md",
        help="also write the Markdown here and the JSON beside it (FILE.json)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = command(
        "calibrate",
        cmd_calibrate,
        "train the reference AdamW over seeds and check the workload's target",
    )
    p.add_argument("workload", help="workload name")
    p.add_argument("--scale", default="smoke", help="workload scale (default: %(default)s)")
    p.add_argument(
        "--seeds", type=_positive, default=5, help="reference runs (default: %(default)s)"
    )
    p.add_argument(
        "--device",
        type=_device,
        default="cpu",
        help="torch device: cpu, cuda or cuda:N (default: %(default)s)",
    )
    p.add_argument(
        "--parallel",
        type=_positive,
        default=1,
        help="trials at once (default 1: timings stay honest)",
    )
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument(
        "--results",
        default="results/calibration",
        help="results root; re-running resumes (default: %(default)s)",
    )

    data = command("data", None, "download and convert datasets")  # ACTION sets func
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "prepare",
        help="download, verify and convert one dataset",
        description="Download, verify and convert one dataset into --dir: "
        "resumable, checksummed, and written atomically.",
        epilog=f"example:\n  {_EXAMPLES['data prepare']}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=cmd_data_prepare)
    p.add_argument("name", metavar="NAME", help="dataset: cifar10 or fineweb10B")
    p.add_argument("--dir", default=default_data_dir(), help="data folder (default: %(default)s)")
    p.add_argument(
        "--train-shards",
        type=_positive,
        default=1,
        metavar="K",
        help="fineweb10B: fetch train shards 1..K (default: %(default)s)",
    )
    p.add_argument(
        "--mirror",
        default=None,
        metavar="URL",
        help="base URL replacing the origin of every canonical download URL",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `optbench` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX must not take torch's GPU
    args = build_parser().parse_args(argv)
    args.command_line = _command_line(argv)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except OptbenchError as exc:
        print(f"optbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
