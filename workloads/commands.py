"""The subcommands the workloads own: `optbench list` and `optbench data prepare`."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commandline import Commands, default_data_dir, positive
from harness.errors import UsageError
from harness.outputs import check_writable_folder

__all__ = ["register"]


def cmd_list(args: argparse.Namespace) -> int:
    from harness.submission import load_submission, reference_dir
    from workloads.registry import WORKLOADS

    print("workloads:")
    for name, cls in sorted(WORKLOADS.items()):
        for scale, config in cls.configs.items():
            if cls.base_scale_of(scale) != scale:
                continue  # a ladder's rung: listed on its base scale's ladder line
            t = config.target
            goal = f"{t.metric} {'<=' if t.direction == 'min' else '>='} {t.value:g}"
            print(
                f"  {name}@{scale} v{cls.version}: {goal}, budget {config.budget.max_steps} "
                f"steps, batch {config.batch_size}"
            )
            if scale in cls.ladders:
                batches = ", ".join(map(str, cls.ladder_batches.get(scale, ())))
                print(f"    ladder: {', '.join(cls.ladder_scales(scale))}; batches {batches}")
    print("reference submissions:")
    for folder in sorted(p.parent for p in reference_dir().glob("*/submission.py")):
        loaded = load_submission(folder)
        print(f"  {loaded.name} ({loaded.level}, {loaded.search_space.num_dims} search dims)")
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from workloads.datasets import DATASETS, prepare

    if args.name not in DATASETS:  # before the folder check and any download
        raise UsageError(f"unknown dataset {args.name!r} (known: {', '.join(sorted(DATASETS))})")
    check_writable_folder(Path(args.dir), "--dir")
    folder = prepare(args.name, Path(args.dir), train_shards=args.train_shards, mirror=args.mirror)
    print(f"{args.name}: prepared in {folder}")
    return 0


def register(commands: Commands) -> None:
    commands.add("list", cmd_list, "list workloads and reference submissions", "optbench list")
    actions = commands.group(
        "data", "download and convert datasets", "optbench data prepare cifar10", "action", "ACTION"
    )
    p = actions.add(
        "prepare",
        cmd_data_prepare,
        "download, verify and convert one dataset",
        "optbench data prepare fineweb10B --train-shards 8 --dir /scratch/optbench-data",
        description="Download, verify and convert one dataset into --dir: resumable, "
        "checksummed, and written atomically.",
    )
    p.add_argument("name", metavar="NAME", help="dataset: cifar10 or fineweb10B")
    p.add_argument("--dir", default=default_data_dir(), help="data folder (default: %(default)s)")
    p.add_argument(
        "--train-shards",
        type=positive,
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
