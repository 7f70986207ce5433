"""tests/with-services.sh, which `make test` runs the suite under: usage, exit status, and what a
user who cannot provision (not root) is told."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tests" / "with-services.sh"


def _run(*command: str, as_user: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", as_user, "--"] if as_user else []
    return subprocess.run(
        [*prefix, "bash", str(SCRIPT), *command],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )


def test_without_a_command_it_prints_usage_and_exits_2() -> None:
    done = _run()
    assert done.returncode == 2 and "Usage: tests/with-services.sh COMMAND" in done.stderr


def test_it_returns_the_commands_exit_status_and_points_it_at_the_cluster() -> None:
    done = _run("sh", "-c", 'echo "conf=$SLURM_CONF"; exit 7')
    assert done.returncode == 7
    if shutil.which("sbatch") or Path("/usr/bin/sbatch").exists():
        assert "conf=" in done.stdout and done.stdout.strip() != "conf="


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the script as another user")
def test_a_user_who_cannot_provision_is_told_one_line_each_and_the_rest_runs() -> None:
    done = _run("sh", "-c", "echo ran", as_user="nobody")
    assert done.returncode == 0 and done.stdout.strip() == "ran"
    for line in done.stderr.strip().splitlines():
        assert line.startswith("make test: "), line
        if "skip" in line:  # a missing piece names the command that provides it
            assert "(as root: " in line, line
