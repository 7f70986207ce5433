"""`optbench bench optimizers | overhead | launchers`: the benchmarks of optbench itself.

Torch, the workloads and Ray are imported by the actions, so the console script starts without
them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harness.commandline import (
    Commands,
    default_data_dir,
    markdown_file,
    nonnegative,
    positive,
)
from sweeps.trial_commands import check_device

__all__ = ["register"]


def cmd_bench_optimizers(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from sweeps.bench.optimizers import (
        BenchConfig,
        check_output_path,
        run_benchmark,
        select_submissions,
        write_report,
    )

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)
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


def cmd_bench_overhead(args: argparse.Namespace) -> int:
    from harness.outputs import BENCH_OVERHEAD_JSON, BENCH_OVERHEAD_MD, check_output
    from sweeps.bench.overhead import SCALE, measure_overhead, write_report
    from workloads import get_workload

    get_workload(args.workload, SCALE, Path(args.data_dir))  # refused before the banner
    if args.output:  # as is an output that may not be written (the JSON goes beside it)
        check_output(args.output, BENCH_OVERHEAD_MD, "--output")
        check_output(Path(args.output).with_suffix(".json"), BENCH_OVERHEAD_JSON, "--output")
    print(
        f"overhead: {args.workload}@{SCALE}, {args.steps} steps, {args.repeats} repeats, "
        "1 torch thread ...",
        file=sys.stderr,
    )
    result = measure_overhead(
        args.workload, Path(args.data_dir), args.steps, args.repeats, command_line=args.command_line
    )
    print(result.markdown(), end="")
    if args.output:
        sidecar = write_report(result, Path(args.output))
        print(f"wrote {args.output} and {sidecar}", file=sys.stderr)
    return 0


def cmd_bench_launchers(args: argparse.Namespace) -> int:
    from sweeps.bench.launchers import check_output_path, measure, render, write_report
    from sweeps.driver import RAY_ENV
    from sweeps.slurm.profile import load_profile

    if args.cluster:
        load_profile(args.cluster)  # an unknown profile: refused before anything is measured
    if args.output:
        check_output_path(Path(args.output))
    for key, value in RAY_ENV.items():  # as the driver: no telemetry, no auth token
        os.environ.setdefault(key, value)
    print(
        f"bench launchers: {args.trials} trials of digits, {args.steps} steps, direct, through "
        f"Ray Tune{', through SLURM (' + args.cluster + ')' if args.cluster else ''} ...",
        file=sys.stderr,
    )
    result = measure(args.trials, args.steps, args.data_dir, args.cluster or None, args.probes)
    if args.cluster and "slurm_s" not in result:
        print("bench launchers: SLURM not measured: no cluster answers `sinfo`", file=sys.stderr)
    print(render(result), end="")
    if args.output:
        sidecar = write_report(result, Path(args.output))
        print(f"wrote {args.output} and {sidecar}", file=sys.stderr)
    return 0


_OUTPUT_HELP = "also write the Markdown here and the JSON beside it (FILE.json)"


def register(commands: Commands) -> None:
    kinds = commands.group(
        "bench",
        "benchmarks of optbench itself: optimizer steps, the runner's overhead, launching",
        "optbench bench optimizers --device cuda --output bench/optimizers.md",
        "kind",
        "BENCHMARK",
    )
    p = kinds.add(
        "optimizers",
        cmd_bench_optimizers,
        "optimizer step time and state memory, vs AdamW",
        "optbench bench optimizers --submissions muon,lion --output bench.md",
        description="For every submission (or --submissions): the optimizer step "
        "time and state memory\non a fixed GPT parameter set (GPT-2 small's shapes "
        "on GPU, a reduced set on CPU),\nas ratios to AdamW measured in the same "
        "run. Markdown on stdout; progress on stderr.",
    )
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
    p.add_argument("--steps", type=positive, default=20, help="timed steps per repeat")
    p.add_argument("--repeats", type=positive, default=5, help="timed repeats; medians reported")
    p.add_argument(
        "--warmup", type=nonnegative, default=5, help="untimed steps before the timed ones"
    )
    p.add_argument(
        "--threads",
        type=positive,
        default=None,
        help="torch CPU threads (default: 1 on cpu, torch's default on cuda)",
    )
    p.add_argument("--output", default=None, metavar="FILE.md", help=_OUTPUT_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = kinds.add(
        "overhead",
        cmd_bench_overhead,
        "time the runner against a minimal hand-written loop (same seed and steps)",
        "optbench bench overhead --workload nanogpt --steps 200 --repeats 5",
    )
    p.add_argument("--workload", default="digits")
    p.add_argument("--steps", type=positive, default=200)
    p.add_argument("--repeats", type=positive, default=3)
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument(
        "--output", type=markdown_file, default=None, metavar="FILE.md", help=_OUTPUT_HELP
    )

    p = kinds.add(
        "launchers",
        cmd_bench_launchers,
        "what starting a trial costs: Ray Tune's per-trial overhead over a direct process, "
        "SLURM's submit-to-start latency",
        "optbench bench launchers --output results/bench-launchers/local.md",
    )
    p.add_argument("--trials", type=positive, default=6, help="trials per way (default: 6)")
    p.add_argument("--steps", type=positive, default=40, help="steps per trial (default: 40)")
    p.add_argument(
        "--probes", type=positive, default=5, help="no-op SLURM jobs for the latency (default: 5)"
    )
    p.add_argument(
        "--cluster",
        default="local",
        metavar="PROFILE",
        help="SLURM profile ('' to skip SLURM; default: %(default)s)",
    )
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument(
        "--output", type=markdown_file, default=None, metavar="FILE.md", help=_OUTPUT_HELP
    )
