"""Sweep fixtures: a real single-node SLURM cluster
(sweeps/slurm/local-cluster.sh) for the session."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "sweeps" / "slurm" / "local-cluster.sh"
UP_TIMEOUT_S = 180


@dataclass(frozen=True, slots=True)
class SlurmCluster:
    """A running local SLURM cluster.

    Attributes:
        state_dir: Where the script keeps configs, spool, logs, pid files and the MariaDB datadir.
        slurm_conf: The slurm.conf clients must read (also exported as SLURM_CONF).
        env: A copy of os.environ with SLURM_CONF set, for subprocesses.
        started_here: True if this session started the daemons (and so stops them at its end).
    """

    state_dir: Path
    slurm_conf: Path
    env: dict[str, str]
    started_here: bool

    def script(
        self, command: str, timeout_s: float = UP_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """Run `local-cluster.sh <command>` (up, down, status, env)
        without raising on its exit code."""
        return run_cluster_script(command, timeout_s)


def run_cluster_script(
    command: str, timeout_s: float = UP_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run `local-cluster.sh <command>` and return the completed process
    (never raises on exit code)."""
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), command],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _slurm_conf_from_env_command() -> Path:
    """The SLURM_CONF path printed by `local-cluster.sh env` (`export SLURM_CONF=...`)."""
    out = run_cluster_script("env", timeout_s=10).stdout.strip()
    prefix = "export SLURM_CONF="
    assert out.startswith(prefix), f"unexpected output of local-cluster.sh env: {out!r}"
    return Path(out.removeprefix(prefix))


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """Start (or reuse) the local SLURM cluster for the session;
    stop it only if this session started it."""
    if shutil.which("sbatch") is None:
        pytest.skip("SLURM is not installed: sweeps/slurm/local-cluster.sh install")
    was_up = run_cluster_script("status", timeout_s=30).returncode == 0
    up = run_cluster_script("up")
    if up.returncode != 0:
        pytest.fail(f"local-cluster.sh up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
    slurm_conf = _slurm_conf_from_env_command()
    previous = os.environ.get("SLURM_CONF")
    # Set here, at the edge: sbatch/sacct and submitit's own calls all read SLURM_CONF.
    os.environ["SLURM_CONF"] = str(slurm_conf)
    try:
        yield SlurmCluster(
            state_dir=slurm_conf.parent,
            slurm_conf=slurm_conf,
            env=dict(os.environ),
            started_here=not was_up,
        )
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if not was_up:
            run_cluster_script("down", timeout_s=120)
