"""Provenance stamped on every results row: code version, packages, machine, job, command."""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import os
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["collect_provenance", "cpu_model"]

_REPO = Path(__file__).resolve().parent.parent


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


@functools.cache
def _static_provenance() -> dict[str, Any]:
    # Untracked files do not change what runs, so only tracked changes mark the tree dirty.
    status = _git("status", "--porcelain", "--untracked-files=no")
    commit = _git("rev-parse", "HEAD")
    return {
        "git_commit": commit,
        "git_dirty": bool(status) if commit else False,
        "optbench_version": _version("optbench"),
        "python_version": platform.python_version(),
        "torch_version": _version("torch"),
        "jax_version": _version("jax"),
        "optax_version": _version("optax"),
        "cpu_model": cpu_model(),
        "hostname": socket.gethostname(),
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_provenance(device_name: str = "cpu", command_line: str | None = None) -> dict[str, Any]:
    """The provenance columns of `harness.results.PROVENANCE_FIELDS` for a row written now.

    Args:
      device_name: the accelerator's name (`torch.cuda.get_device_name`) or `cpu`.
      command_line: the command that started the work; defaults to this process's argv.
    """
    row = dict(_static_provenance())
    row["device_name"] = device_name
    row["slurm_job_id"] = os.environ.get("SLURM_JOB_ID", "")
    row["command_line"] = command_line if command_line is not None else shlex.join(sys.argv)
    row["created_utc"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return row
