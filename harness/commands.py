"""The subcommand the core owns: `optbench sysinfo`."""

from __future__ import annotations

import argparse
import os

from harness.commandline import Commands
from harness.provenance import collect_provenance

__all__ = ["register"]


def cmd_sysinfo(args: argparse.Namespace) -> int:
    import torch  # here: the console script's other commands need not pay for it

    info = collect_provenance("cpu")
    info["cpu_count"] = os.cpu_count()
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
    for key, value in info.items():
        print(f"{key}: {value}")
    return 0


def register(commands: Commands) -> None:
    commands.add("sysinfo", cmd_sysinfo, "print versions, CPU and accelerator", "optbench sysinfo")
