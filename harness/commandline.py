"""What every `optbench` subcommand is built with: the registry, the parser, the argument types.

The console script (`sweeps.cli`) makes one `Commands` and hands it to each package that owns
subcommands (`harness.commands`, `workloads.commands`, `reports.commands`, `sweeps.commands`,
`sweeps.bench.commands`); each registers its own, with an example for its `--help`. An error
caused by input is one line naming what and where, exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness.errors import OptbenchError

__all__ = [
    "Action",
    "Commands",
    "Parser",
    "Register",
    "add_device",
    "add_results",
    "default_data_dir",
    "device",
    "integer",
    "main",
    "markdown_file",
    "nonnegative",
    "positive",
    "seconds",
]

Action = Callable[[argparse.Namespace], int]
"""A subcommand's action: the parsed options in (with `command_line` and `argv` set), exit status
out."""

Register = Callable[["Commands"], None]
"""A package's `register(commands)`: adds the subcommands it owns."""

_RAW = argparse.RawDescriptionHelpFormatter


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (the house rule), pointing at `--help`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Commands:
    """The subcommands of one parser level: `optbench COMMAND`, or a group's `optbench GROUP
    ACTION` (`group`)."""

    def __init__(self, subparsers: Any) -> None:
        self._subparsers = subparsers

    def add(
        self, name: str, action: Action | None, help_text: str, example: str, **kwargs: Any
    ) -> argparse.ArgumentParser:
        """Adds subcommand `name`; returns its parser for its options. `example` (one command
        per line) is the `--help` epilog; `description` (default: `help_text`) its text."""
        kwargs.setdefault("description", help_text)
        lines = "\n  ".join(example.splitlines())
        parser: argparse.ArgumentParser = self._subparsers.add_parser(
            name, help=help_text, epilog=f"example:\n  {lines}", formatter_class=_RAW, **kwargs
        )
        parser.set_defaults(func=action)
        return parser

    def group(self, name: str, help_text: str, example: str, dest: str, metavar: str) -> Commands:
        """Adds `optbench NAME` whose actions are subcommands of their own (`dest` names the
        chosen one in the parsed options, `metavar` in the usage line)."""
        parser = self.add(name, None, help_text, example)
        return Commands(parser.add_subparsers(dest=dest, required=True, metavar=metavar))


def build_parser(registrations: Sequence[Register]) -> Parser:
    """The `optbench` parser with the subcommands `registrations` add, in their order."""
    parser = Parser(
        prog="optbench",
        description="Optimizer benchmarking: fixed workloads, equal tuning budgets, honest clocks.",
        epilog="example:\n  optbench submit submissions/example-nadamw --trials 4 --studies 2",
        formatter_class=_RAW,
    )
    commands = Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for register in registrations:
        register(commands)
    return parser


def main(argv: Sequence[str] | None, registrations: Sequence[Register]) -> int:
    """Parses `argv` (default: this process's) and runs its subcommand; returns the exit status.
    An `OptbenchError` is the one-line error, exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX must not take torch's GPU
    parser = build_parser(registrations)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["optbench", *argv])
    args.argv = argv
    args.parser = parser  # `sweep --resume` parses the recorded command line with it
    try:
        return int(args.func(args) or 0)
    except OptbenchError as exc:
        print(f"optbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`optbench status | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
        return 1


# -- argument types and shared options ---------------------------------------------------------


def default_data_dir() -> str:
    return os.environ.get("OPTBENCH_DATA_DIR", str(Path.home() / ".cache" / "optbench" / "data"))


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        type=device,
        default="cpu",
        help="torch device: cpu, cuda or cuda:N (default: %(default)s)",
    )


def add_results(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", help="results root (default: %(default)s)")


def integer(minimum: int) -> Callable[[str], int]:
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


positive = integer(1)
nonnegative = integer(0)


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def device(text: str) -> str:
    """An argparse type: a torch device this harness runs on (`cpu`, `cuda`, `cuda:N`)."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, got {text!r}")
    return text


def markdown_file(text: str) -> str:
    """An argparse type: an output path for a Markdown report, a `.md` file whose folders are
    not files."""
    path = Path(text)
    if path.suffix != ".md":
        raise argparse.ArgumentTypeError(f"{text!r}: give a .md file (the JSON goes beside it)")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {str(blocking)!r} is a file, not a folder")
    return text
