"""The `optbench` console script: every package's subcommands on one parser.

The top floor. Each package registers the subcommands it owns (`harness.commandline.Commands`);
this module only puts them in order and runs the one asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from harness import commandline
from harness import commands as core_commands
from reports import commands as report_commands
from sweeps import commands as sweep_commands
from sweeps import trial_commands
from sweeps.bench import commands as bench_commands
from workloads import commands as workload_commands

__all__ = ["REGISTRATIONS", "build_parser", "main"]

REGISTRATIONS = (
    workload_commands.register,  # list, data prepare
    trial_commands.register,  # validate, run, calibrate
    sweep_commands.register,  # sweep, scaling, status, submit
    report_commands.register,  # score, leaderboard, report, import-algoperf
    core_commands.register,  # sysinfo
    bench_commands.register,  # bench optimizers | overhead | launchers
)


def build_parser() -> commandline.Parser:
    """The whole `optbench` parser (what `main` parses with)."""
    return commandline.build_parser(REGISTRATIONS)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `optbench` console script; returns the exit status."""
    return commandline.main(argv, REGISTRATIONS)


if __name__ == "__main__":
    sys.exit(main())
