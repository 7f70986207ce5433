"""Sweeps on a real SLURM cluster (the single-node cluster of `sweeps/slurm/local-cluster.sh`).

Every test drives real jobs through `sweeps.launchers.SlurmLauncher`: a sweep completes, a job is
cancelled, runs out of time, is requeued (preempted) and resumes exactly, SIGKILLs itself, runs
data-parallel over two SLURM tasks, outlives its killed driver, and shows in `optbench status`;
and SLURM array tasks race to write one results store. Sweeps run in subprocesses (the CLI, or
`run_lanes` when a test needs spec overrides) so that a test can watch `R/_live/*/` meanwhile.

The node has 2 CPUs; a trial's job asks for one. Test submissions are plain SGD that may sleep in
`step()` (seconds read from a file beside the submission, so the same submission runs fast when a
test compares against a local run) and may SIGKILL their own process. The time-limit test's job
(a 1-minute limit) starts first, in a module fixture, and runs out its minute while the tests that
need only the other CPU run (see `time_limit_sweep`).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import submitit

from harness.isolation import execute_trial
from harness.results import ResultsStore
from harness.runner import run_trial
from harness.trial import TrialSpec, TrialStatus
from workloads import get_workload

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SWEEP_DEADLINE_S = 240  # any sweep here takes well under this; a hang fails instead of blocking
OK = {str(TrialStatus.TARGET_REACHED), str(TrialStatus.BUDGET_EXHAUSTED)}
SPACE = {"lr": {"min": 0.01, "max": 0.1, "scaling": "log"}}

_SOURCE = '''"""Test submission {name!r}: plain SGD that sleeps in step() \
(seconds from SLEEP_FILE) and
SIGKILLs its own process at its third step() call when KILL says so; \
by tests/sweeps/test_slurm.py."""

import os
import signal
import time
from pathlib import Path

import torch

SLEEP_FILE = Path({sleep_file!r})
KILL = {kill!r}  # "never", "once" (while MARKER does not exist) or "always"
MARKER = Path({marker!r})


class SleepySGD(torch.optim.SGD):
    def __init__(self, params, lr, sleep_s):
        super().__init__(params, lr=lr)
        self.sleep_s = sleep_s
        self.calls = 0

    def step(self, closure=None):
        self.calls += 1
        if self.calls == 3 and (KILL == "always" or (KILL == "once" and not MARKER.exists())):
            MARKER.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return super().step(closure)


def optimizer(params, hp, info):
    sleep_s = float(SLEEP_FILE.read_text()) if SLEEP_FILE.exists() else 0.0
    return SleepySGD(params.torch_groups(0.0), lr=hp["lr"], sleep_s=sleep_s)
'''

# The sweep a test needs with TrialSpec overrides (the CLI sets none): argv[1] is its JSON.
_API_SWEEP = """
import json, sys
from harness.submission import load_submission
from sweeps.driver import run_lanes
from sweeps.launchers import SlurmLauncher
from sweeps.rulesets import ExternalRuleset, WorkloadAtScale
from sweeps.slurm.profile import load_profile

args = json.loads(sys.argv[1])
profile = load_profile(args["cluster"])
lanes = []
for folder in args["submissions"]:
    sub = load_submission(folder)
    lanes += ExternalRuleset(num_trials=args["trials"], num_studies=1).lanes(
        str(sub.folder), sub.name, sub.search_space, [WorkloadAtScale(args["workload"], "smoke")],
        args["data_dir"], "test_slurm", args["overrides"])
run_lanes(lanes, args["results"], SlurmLauncher(profile, args["results"]),
          max_concurrent=profile.array_parallelism, num_cpus=2, show_progress=False)
"""


def write_submission(root: Path, name: str, sleep_s: float = 0.0, kill: str = "never") -> Path:
    """Writes submission `root/name`; its step() sleeps `sleep_s` (file `root/name.sleep_s`)."""
    folder = root / name
    folder.mkdir(parents=True)
    sleep_file = root / f"{name}.sleep_s"
    sleep_file.write_text(str(sleep_s))
    source = _SOURCE.format(
        name=name, sleep_file=str(sleep_file), kill=kill, marker=str(root / f"{name}.killed")
    )
    (folder / "submission.py").write_text(source)
    (folder / "search_space.json").write_text(json.dumps(SPACE))
    (folder / "README.md").write_text(f"# {name}\n\nSGD that may sleep or SIGKILL itself.\n")
    return folder


def write_profile(path: Path, **job: Any) -> Path:
    """A cluster profile like `local.toml` with `job` keys replaced."""
    values = {
        "partition": "debug",
        "cpus_per_task": 1,
        "mem_gb": 1.5,
        "timeout_min": 30,
        "signal_delay_s": 30,
        **job,
    }
    lines = ["[job]"] + [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    lines += [
        "[job.sbatch]",
        "requeue = true",
        "[sweep]",
        "array_parallelism = 2",
        "max_retries = 1",
        "poll_s = 1.0",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- SLURM and the results root, as the tests observe them ---------------------------------------


def slurm(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=True).stdout


def sacct(job_id: str, fields: str = "State") -> list[str]:
    """The job's allocation record: `fields` (comma-separated) as a list."""
    out = slurm("sacct", "-j", job_id, "-X", "-n", "-P", f"--format={fields}").strip()
    return out.splitlines()[-1].split("|") if out else []


def final_state(job_id: str, deadline_s: float = 30) -> str:
    """The job's state in sacct once it has ended (accounting lags the job by a moment)."""
    end, state = time.monotonic() + deadline_s, ""
    while time.monotonic() < end:
        state = (sacct(job_id) or [""])[0]
        if state and state not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING"):
            return state
        time.sleep(0.5)
    raise AssertionError(f"SLURM job {job_id} still {state!r} after {deadline_s}s")


def squeue_state(job_id: str) -> str:
    result = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout.strip()


def launches(results: Path) -> dict[str, dict[str, Any]]:
    """trial id -> launch record, for the trials running now."""
    found = {}
    for path in (results / "_live").glob("*/launch.json"):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass  # the trial finished and its folder went meanwhile
    return found


def progress_points(results: Path, trial_id: str) -> int:
    path = results / "_live" / trial_id / "progress.jsonl"
    try:
        return path.read_text().count("\n")
    except OSError:
        return 0


def rows(results: Path) -> dict[str, dict[str, Any]]:
    """trial id -> stored trial row."""
    return {r["trial_id"]: r for r in ResultsStore(results).read_trials().to_dict("records")}


def curve(evals: list[dict[str, Any]]) -> dict[tuple[int, str], float]:
    return {(int(r["step"]), str(r["metric"])): float(r["value"]) for r in evals}


def local_spec(launch: dict[str, Any], **changes: Any) -> TrialSpec:
    return TrialSpec.from_dict({**launch["spec"], **changes})


# -- sweeps in subprocesses ----------------------------------------------------------------------


class Sweeps:
    """Starts sweeps as subprocesses (own process groups) and cleans up after a test: kills any
    sweep still running and cancels every SLURM job the test's results roots submitted."""

    def __init__(self, tmp_path: Path, data_dir: Path, env: dict[str, str]) -> None:
        self.tmp = tmp_path
        self.data_dir = data_dir
        self.env = {**env, "PYTHONPATH": str(REPO)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def _start(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.log = self.tmp / log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def cli(self, *args: str, log: str = "cli.log") -> subprocess.Popen[bytes]:
        return self._start([sys.executable, "-m", "sweeps.cli", *args], log)

    def sweep_cli(
        self, submissions: list[Path], results: Path, trials: int = 1, cluster: str = "local"
    ) -> subprocess.Popen[bytes]:
        options = f"--workloads digits --trials {trials} --studies 1 --cpus 2 --quiet".split()
        return self.cli(
            "sweep",
            *map(str, submissions),
            *["--launcher", "slurm", "--cluster", cluster, *options],
            *["--results", str(results), "--data-dir", str(self.data_dir)],
        )

    def sweep_api(
        self,
        submissions: list[Path],
        results: Path,
        overrides: dict[str, Any],
        cluster: str = "local",
        trials: int = 1,
        workload: str = "digits",
    ) -> subprocess.Popen[bytes]:
        args = {
            "submissions": [str(s) for s in submissions],
            "results": str(results.resolve()),
            "data_dir": str(self.data_dir),
            "overrides": overrides,
            "cluster": cluster,
            "trials": trials,
            "workload": workload,
        }
        return self._start([sys.executable, "-c", _API_SWEEP, json.dumps(args)], "api.log")

    def wait(
        self,
        proc: subprocess.Popen[bytes],
        deadline: float,
        while_running: Callable[[], None] | None = None,
    ) -> None:
        """Waits for `proc` (calling `while_running` every 0.2 s) until monotonic `deadline`;
        fails, with the end of its log, if it runs past it or exits non-zero."""
        while proc.poll() is None:
            if time.monotonic() > deadline:
                self.kill(proc)
                pytest.fail(f"sweep still running at its deadline:\n{self.log_tail(proc)}")
            if while_running is not None:
                while_running()
            time.sleep(0.2)
        assert proc.returncode == 0, f"sweep exited {proc.returncode}:\n{self.log_tail(proc)}"

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILLs the sweep's whole process group (driver and Ray) and reaps the driver."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    @staticmethod
    def log_tail(proc: subprocess.Popen[bytes], chars: int = 4000) -> str:
        return Path(proc.log).read_text(errors="replace")[-chars:]  # type: ignore[attr-defined]

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)
        job_ids = set()
        for folder in self.tmp.rglob("_slurm"):
            job_ids |= {p.name.split("_")[0] for p in folder.iterdir() if p.name[:1].isdigit()}
        queued = subprocess.run(
            ["squeue", "-h", "-o", "%i", "-j", ",".join(sorted(job_ids))],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        left = sorted({line.split("_")[0] for line in queued.stdout.split()} & job_ids)
        if job_ids and left:
            subprocess.run(["scancel", *left], capture_output=True, timeout=30, check=False)


@pytest.fixture
def sweeps(slurm_cluster: Any, tmp_path: Path, data_dir: Path) -> Iterator[Sweeps]:
    runs = Sweeps(tmp_path, data_dir, slurm_cluster.env)
    try:
        yield runs
    finally:
        runs.cleanup()


def _utc(sacct_time: str) -> datetime.datetime:
    """sacct prints local time without a zone."""
    return datetime.datetime.fromisoformat(sacct_time).astimezone(datetime.UTC)


def logged_span(log: Path) -> tuple[float, float]:
    """The first and last times a submitit job's Python process logged, in Unix seconds
    (submitit logs local time to the millisecond)."""
    stamps = [
        line[line.index("(") + 1 : line.index(")")]
        for line in log.read_text().splitlines()
        if line.startswith("submitit ")
    ]
    times = [
        datetime.datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
        for t in stamps
    ]
    return times[0], times[-1]


def submit_to_python_s(results: Path, job_id: str) -> float:
    """Seconds from submitit's pickle of the job (written just before sbatch) to the first line
    the job's Python process logged."""
    folder = results / "_slurm" / job_id
    submitted_s = (folder / f"{job_id}_submitted.pkl").stat().st_mtime
    return logged_span(folder / f"{job_id}_0_log.out")[0] - submitted_s


@dataclass(frozen=True, slots=True)
class BackgroundSweep:
    runs: Sweeps
    proc: subprocess.Popen[bytes]
    results: Path


@pytest.fixture(scope="module")
def time_limit_sweep(
    slurm_cluster: Any, tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Iterator[BackgroundSweep]:
    """The time-limit test's sweep, started early: one job of a trial that would run 200 s under a
    1-minute limit. It holds one of the node's 2 CPUs, and its minute (and the up to ~30 s more
    before slurmctld enforces it) passes while the tests marked with this fixture, which need only
    the other CPU, run; `test_time_limit_records_timed_out` then collects it."""
    tmp = tmp_path_factory.mktemp("time-limit")
    runs = Sweeps(tmp, data_dir, slurm_cluster.env)
    profile = write_profile(
        tmp / "one-minute.toml", timeout_min=1, signal_delay_s=10, requeue_on_timeout=0
    )
    submission = write_submission(tmp, "sgd-endless", sleep_s=0.5)  # 400 steps: 200 s
    results = tmp / "results"
    proc = runs.sweep_api([submission], results, {"max_time_s": 900.0}, cluster=str(profile))
    try:
        yield BackgroundSweep(runs, proc, results)
    finally:
        runs.cleanup()


# -- the tests -------------------------------------------------------------------------------------
# The tests marked with `time_limit_sweep` run first, beside that sweep's job, and need only one
# CPU of the node at a time; those needing both CPUs run after it.


@pytest.mark.usefixtures("time_limit_sweep")
def test_scancel_records_cancelled(sweeps: Sweeps, tmp_path: Path) -> None:
    results = tmp_path / "results"
    slow = write_submission(tmp_path, "sgd-slow", sleep_s=0.05)
    normal = write_submission(tmp_path, "sgd-normal")
    proc = sweeps.sweep_cli([slow, normal], results)
    cancelled: list[str] = []

    def cancel_the_slow_trial_once_it_trains() -> None:
        for trial_id, launch in launches(results).items():
            is_slow = launch["spec"]["submission"] == str(slow)
            if is_slow and not cancelled and progress_points(results, trial_id) >= 1:
                slurm("scancel", launch["job_id"])
                cancelled.append(launch["job_id"])

    sweeps.wait(proc, time.monotonic() + SWEEP_DEADLINE_S, cancel_the_slow_trial_once_it_trains)
    assert cancelled, "the slow trial ended before it could be cancelled"
    by_submission = {r["submission"]: r for r in rows(results).values()}
    assert by_submission["sgd-slow"]["status"] == str(TrialStatus.CANCELLED)
    assert by_submission["sgd-slow"]["slurm_job_id"] == cancelled[0]
    assert "CANCELLED" in by_submission["sgd-slow"]["error"]
    assert by_submission["sgd-slow"]["steps"] >= 40  # the eval point it reached is kept
    assert by_submission["sgd-normal"]["status"] in OK
    assert final_state(cancelled[0]).startswith("CANCELLED")


@pytest.mark.usefixtures("time_limit_sweep")
def test_requeued_trial_resumes_exactly(sweeps: Sweeps, tmp_path: Path) -> None:
    results = tmp_path / "results"
    submission = write_submission(tmp_path, "sgd-preempted", sleep_s=0.02)  # 400 steps: ~10 s
    overrides = {"max_steps": 400, "max_time_s": 300.0}  # the clock must not end either run
    proc = sweeps.sweep_api([submission], results, overrides)
    requeued: list[dict[str, Any]] = []

    def requeue_after_two_evals() -> None:
        for trial_id, launch in launches(results).items():
            if not requeued and progress_points(results, trial_id) >= 2:
                slurm("scontrol", "requeue", launch["job_id"])
                requeued.append(launch)

    sweeps.wait(proc, time.monotonic() + SWEEP_DEADLINE_S, requeue_after_two_evals)
    assert requeued, "the trial finished before it could be requeued"
    launch = requeued[0]
    (row,) = rows(results).values()
    assert row["status"] in OK, row["error"]
    assert row["restarts"] >= 1 and row["attempts"] == 1
    assert row["slurm_job_id"] == launch["job_id"]  # the same job, requeued, not a new one
    evals = ResultsStore(results).read_evals()
    points = evals.drop_duplicates("eval_index").sort_values("eval_index")
    assert points["step"].is_monotonic_increasing and points["step"].is_unique
    assert points["train_time_s"].diff().dropna().gt(0).all()

    (tmp_path / "sgd-preempted.sleep_s").write_text("0")  # same source, same trial id: fast
    local = run_trial(local_spec(launch), get_workload)
    assert local.row["trial_id"] == row["trial_id"] and local.row["restarts"] == 0
    assert local.row["steps"] == row["steps"]
    slurm_curve, local_curve = curve(evals.to_dict("records")), curve(local.evals)
    assert slurm_curve.keys() == local_curve.keys()
    for key, value in local_curve.items():
        assert abs(slurm_curve[key] - value) <= 1e-6, (
            f"{key}: resumed {slurm_curve[key]}, uninterrupted {value}"
        )


@pytest.mark.usefixtures("time_limit_sweep")
def test_job_that_sigkills_itself_is_retried(sweeps: Sweeps, tmp_path: Path) -> None:
    results = tmp_path / "results"
    once = write_submission(tmp_path, "sgd-kill-once", kill="once")
    always = write_submission(tmp_path, "sgd-kill-always", kill="always")
    proc = sweeps.sweep_cli([once, always], results)
    history: dict[str, dict[str, Any]] = {}  # trial id -> its latest launch record seen
    deadline = time.monotonic() + SWEEP_DEADLINE_S
    sweeps.wait(proc, deadline, lambda: history.update(launches(results)))

    by_submission = {r["submission"]: r for r in rows(results).values()}
    retried, killed = by_submission["sgd-kill-once"], by_submission["sgd-kill-always"]
    assert retried["status"] in OK and retried["attempts"] == 2, retried["error"]
    launch = history[retried["trial_id"]]
    assert launch["attempt"] == 2 and len(launch["job_ids"]) == 2, launch
    first, second = launch["job_ids"]
    assert retried["slurm_job_id"] == second != first
    assert (results / "_slurm" / first).is_dir()  # the first job's logs stay
    assert final_state(first) != "COMPLETED"

    assert killed["status"] == str(TrialStatus.KILLED) and killed["attempts"] == 2
    assert "without a result" in killed["error"]
    assert len(killed["slurm_job_id"].split(",")) == 2


@pytest.mark.usefixtures("time_limit_sweep")
def test_status_shows_slurm_state_of_running_trials(sweeps: Sweeps, tmp_path: Path) -> None:
    results = tmp_path / "results"
    submission = write_submission(tmp_path, "sgd-watched", sleep_s=0.1)
    proc = sweeps.sweep_cli([submission], results)
    deadline = time.monotonic() + SWEEP_DEADLINE_S
    while not launches(results):
        assert proc.poll() is None, sweeps.log_tail(proc)
        assert time.monotonic() < deadline, "no trial was launched"
        time.sleep(0.2)
    status = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "status", "--results", str(results)],
        cwd=REPO,
        env=sweeps.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    (line,) = [row for row in status.stdout.splitlines() if row.startswith("| sgd-watched |")]
    assert line.rstrip(" |").endswith(("RUNNING 1", "PENDING 1")), status.stdout
    assert "| 1 |" in line  # one trial running


def test_time_limit_records_timed_out(time_limit_sweep: BackgroundSweep) -> None:
    sweep = time_limit_sweep
    sweep.runs.wait(sweep.proc, time.monotonic() + SWEEP_DEADLINE_S)
    (row,) = rows(sweep.results).values()
    assert row["status"] == str(TrialStatus.TIMED_OUT), row["error"]
    assert "TIMEOUT" in row["error"] and row["attempts"] == 1
    assert row["steps"] >= 40  # the eval points reached within the limit are kept
    job_id = row["slurm_job_id"]
    assert final_state(job_id) == "TIMEOUT"
    start, end = map(_utc, sacct(job_id, "Start,End"))
    recorded = datetime.datetime.fromisoformat(row["created_utc"])
    ran_s, recorded_s = (end - start).total_seconds(), (recorded - start).total_seconds()
    assert 60 <= ran_s <= 100, f"a 1-minute job ran {ran_s:.0f}s"
    assert recorded_s < 120, f"timed_out recorded {recorded_s:.0f}s after the job started"
    print(f"1-minute limit: job ran {ran_s:.0f}s, row recorded {recorded_s:.0f}s after its start")


def test_array_tasks_write_one_store_concurrently(
    sweeps: Sweeps, tmp_path: Path, data_dir: Path
) -> None:
    root = tmp_path / "results"
    submission = write_submission(tmp_path, "sgd-array")

    def spec(seed: int, index: int) -> TrialSpec:
        return TrialSpec(
            workload="digits",
            scale="smoke",
            submission=str(submission),
            hparams_json=TrialSpec.canonical_hparams({"lr": 0.05}),
            seed=seed,
            data_dir=str(data_dir),
            trial_index=index,
            max_steps=40,
        )

    same = spec(100, 6)
    specs = [same, same] + [spec(seed, seed) for seed in range(6)]  # the twins start together
    executor = submitit.AutoExecutor(folder=tmp_path / "array" / "_slurm" / "%j", cluster="slurm")
    executor.update_parameters(
        timeout_min=5,
        slurm_partition="debug",
        cpus_per_task=1,
        mem_gb=1.5,
        slurm_array_parallelism=2,
    )
    builders = [get_workload] * len(specs)
    jobs = executor.map_array(execute_trial, specs, [str(root)] * len(specs), builders)
    deadline = time.monotonic() + SWEEP_DEADLINE_S  # the `sweeps` fixture cancels what is left
    while not all(job.done() for job in jobs):
        assert time.monotonic() < deadline, [job.state for job in jobs]
        time.sleep(1)
    summaries = [job.result() for job in jobs]
    (a_start, a_end), (b_start, b_end) = (logged_span(job.paths.stdout) for job in jobs[:2])
    assert a_start < b_end and b_start < a_end, "the twins did not run at the same time"
    assert summaries[0]["trial_id"] == summaries[1]["trial_id"]
    assert all(s["status"] in OK for s in summaries)
    distinct = {s["trial_id"] for s in summaries}
    assert len(distinct) == 7

    store = ResultsStore(root)
    trials, evals = store.read_trials(), store.read_evals()
    assert sorted(trials["trial_id"]) == sorted(distinct)
    assert set(evals["trial_id"]) == distinct
    for table in ("trials", "evals"):
        names = sorted(p.name for p in (root / table).iterdir())
        assert names == sorted(f"{t}.parquet" for t in distinct), names  # no temporaries
    for trial_id in distinct:
        assert pq.read_table(root / "trials" / f"{trial_id}.parquet").num_rows == 1
        per_trial = evals[evals["trial_id"] == trial_id]
        assert not per_trial.duplicated(["eval_index", "metric"]).any()


def test_two_trial_sweep_completes_on_slurm(sweeps: Sweeps, tmp_path: Path) -> None:
    results = tmp_path / "results"
    submission = write_submission(tmp_path, "sgd-plain")
    started = time.monotonic()
    proc = sweeps.sweep_cli([submission], results, trials=2)
    seen: dict[str, dict[str, Any]] = {}
    sweeps.wait(proc, started + SWEEP_DEADLINE_S, lambda: seen.update(launches(results)))
    wall_s = time.monotonic() - started

    stored = rows(results)
    assert len(stored) == 2
    assert {r["status"] for r in stored.values()} <= OK, stored
    job_ids = {trial_id: r["slurm_job_id"] for trial_id, r in stored.items()}
    assert all(j and j.isdigit() for j in job_ids.values()) and len(set(job_ids.values())) == 2
    assert not (results / "_live").exists() or not any((results / "_live").iterdir())
    for trial_id, job_id in job_ids.items():
        assert final_state(job_id) == "COMPLETED"
        submit, start, end = map(_utc, sacct(job_id, "Submit,Start,End"))
        line = (
            f"job {job_id}: sacct submit->start {(start - submit).total_seconds():.0f}s, "
            f"submit->job's Python logging {submit_to_python_s(results, job_id):.2f}s, "
            f"run {(end - start).total_seconds():.0f}s"
        )
        if trial_id in seen:  # launch.json was seen before the trial finished and it went
            assert seen[trial_id]["job_id"] == job_id
            launched = datetime.datetime.fromisoformat(seen[trial_id]["started_utc"])
            line += f", launch.json started_utc->start {(start - launched).total_seconds():.0f}s"
        print(line)
    assert seen, "no launch record was seen while the sweep ran"
    print(f"2-trial SLURM sweep wall time: {wall_s:.1f}s")


def test_two_task_job_trains_one_data_parallel_trial(sweeps: Sweeps, tmp_path: Path) -> None:
    results = tmp_path / "results"
    profile = write_profile(
        tmp_path / "two-tasks.toml", tasks_per_node=2, mem_gb=3.0, timeout_min=10
    )
    submission = write_submission(tmp_path, "sgd-dp")
    # nanogpt: no BatchNorm, so one process with the same global batch computes the same steps
    overrides = {"world_size": 2, "max_steps": 40, "stop_at_target": False}
    proc = sweeps.sweep_api(
        [submission], results, overrides, cluster=str(profile), workload="nanogpt"
    )
    seen: dict[str, dict[str, Any]] = {}
    sweeps.wait(proc, time.monotonic() + SWEEP_DEADLINE_S, lambda: seen.update(launches(results)))
    (row,) = rows(results).values()
    assert row["status"] == str(TrialStatus.BUDGET_EXHAUSTED), row["error"]
    assert row["steps"] == 40 and row["hardware_class"].endswith("x2")
    slurm_curve = curve(ResultsStore(results).read_evals().to_dict("records"))
    launch = seen[row["trial_id"]]

    # The same two ranks on this machine (harness.runner's own processes): the same numbers.
    two = run_trial(local_spec(launch), get_workload)
    assert two.row["trial_id"] == row["trial_id"]
    assert curve(two.evals).keys() == slurm_curve.keys()
    for key, value in curve(two.evals).items():
        assert abs(slurm_curve[key] - value) <= 1e-6 * max(1.0, abs(value)), key
    # One process with the same global batch: the same steps, up to float summation order.
    one = run_trial(local_spec(launch, world_size=1), get_workload)
    assert one.status is TrialStatus.BUDGET_EXHAUSTED, one.row["error"]
    one_curve = curve(one.evals)
    assert one_curve.keys() == slurm_curve.keys()
    for (step, metric), value in one_curve.items():
        got = slurm_curve[step, metric]
        assert abs(got - value) <= 1e-4 * abs(value), (
            f"step {step} {metric}: 2 tasks {got}, 1 process {value}"
        )
    worst = max(abs(slurm_curve[k] / v - 1) for k, v in one_curve.items() if v)
    print(f"2 SLURM tasks vs 1 process: every eval value within {worst:.1e} relative")


def test_killed_driver_is_resumed_by_adopting_its_jobs(sweeps: Sweeps, tmp_path: Path) -> None:
    results = tmp_path / "results"
    submission = write_submission(tmp_path, "sgd-adopted", sleep_s=0.04)  # 400 steps: ~16 s
    proc = sweeps.sweep_cli([submission], results, trials=2)
    deadline = time.monotonic() + SWEEP_DEADLINE_S
    running: dict[str, str] = {}
    while not running:  # every planned trial launched, one of them RUNNING
        assert proc.poll() is None, sweeps.log_tail(proc)
        assert time.monotonic() < deadline, "no trial job started running"
        found = {t: str(launch["job_id"]) for t, launch in launches(results).items()}
        if len(found) == 2 and any(squeue_state(j) == "RUNNING" for j in found.values()):
            running = found
        time.sleep(0.2)
    Sweeps.kill(proc)
    assert all(squeue_state(j) in ("RUNNING", "PENDING") for j in running.values())

    resumed = sweeps.cli(
        "sweep", "--resume", "--results", str(results), "--quiet", log="resume.log"
    )
    sweeps.wait(resumed, deadline)
    stored = rows(results)
    assert sorted(stored) == sorted(running)  # one row per planned trial
    for trial_id, job_id in running.items():
        assert stored[trial_id]["status"] in OK, stored[trial_id]["error"]
        assert stored[trial_id]["slurm_job_id"] == job_id  # adopted, not submitted again
        assert stored[trial_id]["attempts"] == 1
    assert sorted(p.name for p in (results / "_slurm").iterdir() if p.is_dir()) == sorted(
        running.values()
    )


def test_a_profile_partition_the_cluster_lacks_is_refused_before_anything(
    slurm_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweeps.cli import main

    results = tmp_path / "runs"
    code = main(
        [
            "sweep",
            "adamw",
            "--launcher",
            "slurm",
            "--cluster",
            "gpu-example",
            "--workloads",
            "digits",
            "--results",
            str(results),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "partition 'gpu'" in err[0] and "debug" in err[0]  # names what the cluster has
    assert not results.exists()
