"""The local SLURM cluster (sweeps/slurm/local-cluster.sh):
jobs run, sacct answers, submitit works."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Protocol

import pytest
import submitit

JOB_DEADLINE_S = 60


class SlurmCluster(Protocol):
    """What these tests use of the `slurm_cluster` fixture (tests/sweeps/conftest.py)."""

    state_dir: Path
    env: dict[str, str]

    def script(self, command: str, timeout_s: float = ...) -> subprocess.CompletedProcess[str]: ...


def _slurm(*args: str, env: dict[str, str]) -> str:
    """Run a SLURM client command against the local cluster and return its stdout."""
    return subprocess.run(
        list(args), env=env, capture_output=True, text=True, timeout=30, check=True
    ).stdout


def _node_state(env: dict[str, str]) -> str:
    return _slurm("sinfo", "-h", "-n", "localhost", "-o", "%T", env=env).strip()


def _daemon_pids(state_dir: Path) -> dict[str, str]:
    return {p.stem: p.read_text().strip() for p in sorted((state_dir / "run").glob("*.pid"))}


def test_sbatch_job_completes_in_sacct(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    env = slurm_cluster.env
    assert _node_state(env) in {
        "idle",
        "mixed",
        "allocated",
    }  # up and serving (not down or drained)
    # --chdir: the job's slurm-<id>.out goes to tmp_path, not into the repository.
    submitted = _slurm("sbatch", "--parsable", f"--chdir={tmp_path}", "--wrap", "true", env=env)
    job_id = submitted.strip().split(";")[0]
    assert job_id.isdigit()
    deadline = time.monotonic() + JOB_DEADLINE_S
    state = ""
    while time.monotonic() < deadline:
        state = _slurm("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State", env=env).strip()
        if state and state != "PENDING" and state != "RUNNING":
            break
        time.sleep(0.2)
    assert state == "COMPLETED", f"job {job_id} is {state!r} after at most {JOB_DEADLINE_S}s"


def test_submitit_job_returns_result(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    # A nested function: cloudpickle ships it by value, since the job cannot import this test
    # module.
    def answer() -> int:
        return 6 * 7

    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm")
    # timeout_min >= 3: submitit asks for USR2 90 s before the limit (see shared/ENV.md).
    executor.update_parameters(timeout_min=5, slurm_partition="debug", cpus_per_task=1, mem_gb=1)
    start_s = time.monotonic()
    job = executor.submit(answer)
    assert job.job_id.isdigit(), job.job_id
    while not job.done():
        if time.monotonic() - start_s > JOB_DEADLINE_S:
            job.cancel()
            pytest.fail(f"submitit job {job.job_id} not done after {JOB_DEADLINE_S}s: {job.state}")
        time.sleep(0.2)
    assert job.result() == 42
    print(f"submitit submit-to-result latency: {time.monotonic() - start_s:.1f}s")


def test_up_is_idempotent(slurm_cluster: SlurmCluster) -> None:
    before = _daemon_pids(slurm_cluster.state_dir)
    up = slurm_cluster.script("up")
    assert up.returncode == 0, up.stderr
    assert "already up" in up.stdout
    assert _daemon_pids(slurm_cluster.state_dir) == before


def test_down_then_up_again(slurm_cluster: SlurmCluster) -> None:
    env = slurm_cluster.env
    # `down` cancels every job: do not pull a shared cluster from under another session's jobs.
    deadline = time.monotonic() + 90  # jobs of earlier tests may still be completing
    while (active := _slurm("squeue", "-h", "-o", "%i", env=env)).strip():
        assert time.monotonic() < deadline, f"jobs {active.split()} still active after 90 s"
        time.sleep(1)
    start_s = time.monotonic()
    down = slurm_cluster.script("down", timeout_s=120)
    assert down.returncode == 0, down.stderr
    assert slurm_cluster.script("status", timeout_s=30).returncode == 3
    # `down` is idempotent: fine when nothing runs.
    assert slurm_cluster.script("down", timeout_s=30).returncode == 0
    up = slurm_cluster.script("up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert slurm_cluster.script("status", timeout_s=30).returncode == 0
    assert _node_state(env) in {
        "idle",
        "mixed",
        "allocated",
    }  # up and serving (not down or drained)
    print(f"local cluster down + up: {time.monotonic() - start_s:.1f}s")
