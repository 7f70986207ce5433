"""Faults through the real Ray Tune driver on this machine (local launcher, no SLURM).

A trial that raises, diverges or is SIGKILLed ends as one row with the right status; each ruleset
gets exactly its budget however its trials end; a driver SIGKILLed at any point finishes on
`optbench sweep --resume` without losing or repeating a trial; a sweep refuses to mix search
algorithms; TPE and ASHA sweeps store every trial; a sweep can attach to a running Ray cluster
(`--ray-address`); `optbench status` reports a sweep's progress.

Every sweep is digits at smoke scale, one or two studies, a few trials, two CPUs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.results import ResultsStore
from harness.submission import load_submission
from harness.trial import TrialStatus
from sweeps.driver import run_lanes
from sweeps.identity import spec_trial_id
from sweeps.launchers import LocalLauncher
from sweeps.rulesets import (
    ComputeRuleset,
    ExternalRuleset,
    Lane,
    Ruleset,
    SelfRuleset,
    WorkloadAtScale,
)
from tests.sweeps.fault_submissions import Fault, write_submission
from workloads import WORKLOADS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's console scripts: optbench, ray
DIGITS = WorkloadAtScale("digits", "smoke")
FINISHED = {str(TrialStatus.TARGET_REACHED), str(TrialStatus.BUDGET_EXHAUSTED)}
NORMAL = FINISHED | {str(TrialStatus.DIVERGED), str(TrialStatus.FAILED)}
LANE_KEY = ["submission", "workload", "study"]
TRIAL_KEY = [*LANE_KEY, "trial_index"]
CLI_TIMEOUT_S = 240


# -- helpers -----------------------------------------------------------------------------------


def _lanes(
    ruleset: Ruleset,
    folders: Sequence[Path],
    data_dir: Path,
    overrides: dict[str, Any] | None = None,
) -> list[Lane]:
    """The ruleset's lanes for each submission folder on digits@smoke."""
    lanes = []
    for folder in folders:
        loaded = load_submission(folder)
        lanes += ruleset.lanes(
            str(loaded.folder),
            loaded.name,
            loaded.search_space,
            [DIGITS],
            str(data_dir),
            overrides=overrides,
        )
    return lanes


def _sweep(lanes: Sequence[Lane], results: Path, ray_address: str | None = None) -> list[Any]:
    """Runs the lanes through the real driver: local launcher, one retry, two CPUs."""
    return run_lanes(
        lanes,
        results,
        LocalLauncher(max_retries=1),
        max_concurrent=2,
        num_cpus=2,
        ray_address=ray_address,
        show_progress=False,
    )


def _trials(results: Path) -> pd.DataFrame:
    return ResultsStore(results).read_trials()


def _trial_files(results: Path) -> int:
    return len(ResultsStore(results).files("trials"))


def _assert_once_each(trials: pd.DataFrame, expected: int) -> None:
    """Exactly one row per planned trial: no trial lost, none counted twice."""
    counts = trials.groupby(TRIAL_KEY).size()
    assert (counts == 1).all(), f"trials stored more than once:\n{counts[counts > 1]}"
    assert len(trials) == expected and trials["trial_id"].is_unique


def _assert_ruleset(trials: pd.DataFrame, expected: dict[str, Any]) -> None:
    """Every row records the ruleset, its numbers and the search algorithm."""
    for text in trials["ruleset_json"]:
        assert json.loads(text) == expected
    assert set(trials["ruleset"]) == {expected["name"]}


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
    }


def _session_pids(session: int) -> list[int]:
    """The processes of session `session` (a process started with start_new_session=True and
    everything it started: Ray's workers get process groups of their own, not sessions)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:  # after the command's closing parenthesis: state, ppid, pgrp, session, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if int(fields[3]) == session:
            pids.append(int(entry.name))
    return pids


def _kill_session(proc: subprocess.Popen[Any]) -> None:
    """SIGKILLs `proc` (started with start_new_session=True) and every process left in its
    session: its process group, and Ray workers and trial processes in groups of their own."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in _session_pids(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


@contextlib.contextmanager
def _started(command: Sequence[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    """`command` running in its own session;
    whatever is left of the session is SIGKILLed on exit."""
    proc = subprocess.Popen(
        list(command), cwd=REPO, env=_env(), start_new_session=True, text=True, **kwargs
    )
    try:
        yield proc
    finally:
        _kill_session(proc)


def _optbench(*args: str, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Runs `optbench ARGS` to its end in its own session (its Ray processes die with it)."""
    command = [str(BIN / "optbench"), *args]
    with _started(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _wait_for(
    condition: Callable[[], bool],
    proc: subprocess.Popen[str] | None,
    what: str,
    timeout_s: float = CLI_TIMEOUT_S,
    poll_s: float = 0.05,
) -> None:
    """Polls `condition` until it holds; fails if `proc` ends first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"process ended (exit {proc.returncode}) before {what}:\n{stderr}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(poll_s)


# -- 1. faults inside trials -------------------------------------------------------------------


def test_each_fault_ends_as_one_row_with_its_status(tmp_path: Path, data_dir: Path) -> None:
    subs = tmp_path / "submissions"
    faults = [Fault.RAISE, Fault.NAN, Fault.KILL_ONCE, Fault.KILL_ALWAYS]
    folders = [write_submission(subs, f"sgd-{fault}", fault) for fault in faults]
    lanes = _lanes(
        ExternalRuleset(num_trials=1, num_studies=1), folders, data_dir, {"max_steps": 60}
    )
    results = tmp_path / "results"
    launcher_retries = 1

    summaries = _sweep(lanes, results)  # finishes: no trial's fault is the sweep's

    assert len(summaries) == len(faults)
    trials = _trials(results)
    _assert_once_each(trials, expected=len(faults))
    assert _trial_files(results) == len(faults)
    row = {name: r for name, r in zip(trials["submission"], trials.to_dict("records"), strict=True)}

    failed = row["sgd-raise"]
    assert failed["status"] == TrialStatus.FAILED
    assert "Traceback" in failed["error"] and "RuntimeError: injected fault" in failed["error"]

    assert row["sgd-nan"]["status"] == TrialStatus.DIVERGED

    retried = row["sgd-kill_once"]
    assert retried["status"] in FINISHED, retried["error"]
    assert retried["attempts"] == 2 and pd.isna(retried["error"])
    assert len(list((subs / "sgd-kill_once-markers").iterdir())) == 1  # killed once, not twice
    assert not list((subs / "sgd-kill_once").rglob("killed-*"))  # markers lie outside

    killed = row["sgd-kill_always"]
    assert killed["status"] == TrialStatus.KILLED and "SIGKILL" in killed["error"]
    assert killed["attempts"] == launcher_retries + 1

    live = ResultsStore(results).live_root
    assert not live.exists() or not any(live.iterdir()), "stored trials left live folders"


# -- 2. every ruleset gets exactly its budget --------------------------------------------------


def test_external_runs_n_x_s_trials_per_submission_even_when_they_fail(
    tmp_path: Path, data_dir: Path
) -> None:
    subs = tmp_path / "submissions"
    folders = [write_submission(subs, "sgd-ok"), write_submission(subs, "sgd-raise", Fault.RAISE)]
    ruleset = ExternalRuleset(num_trials=2, num_studies=2, seed=7)
    results = tmp_path / "results"

    _sweep(_lanes(ruleset, folders, data_dir, {"max_steps": 40}), results)

    trials = _trials(results)
    _assert_once_each(trials, expected=2 * 2 * 2)
    for (submission, study), lane in trials.groupby(["submission", "study"]):
        assert sorted(lane["trial_index"]) == [0, 1], (submission, study)
    assert set(trials.loc[trials["submission"] == "sgd-raise", "status"]) == {"failed"}
    assert set(trials.loc[trials["submission"] == "sgd-ok", "status"]) <= FINISHED
    _assert_ruleset(
        trials,
        {
            "name": "external",
            "num_trials": 2,
            "num_studies": 2,
            "seed": 7,
            "search": "quasi-random",
        },
    )


def test_self_runs_one_trial_per_study_with_budget_factor_times_the_budget(
    tmp_path: Path, data_dir: Path
) -> None:
    folder = write_submission(tmp_path / "submissions", "sgd-ok")
    ruleset = SelfRuleset(num_studies=2, budget_factor=0.25)
    budget = WORKLOADS["digits"].configs["smoke"].budget
    max_steps = round(0.25 * budget.max_steps)
    lanes = _lanes(ruleset, [folder], data_dir)
    results = tmp_path / "results"

    _sweep(lanes, results)

    trials = _trials(results)
    _assert_once_each(trials, expected=2)
    assert sorted(zip(trials["study"], trials["trial_index"], strict=True)) == [(0, 0), (1, 0)]
    planned = [lane.trial(0) for lane in lanes]
    assert {spec.max_steps for spec in planned} == {max_steps}
    assert {spec.max_time_s for spec in planned} == {0.25 * budget.max_time_s}
    assert set(trials["trial_id"]) == {spec_trial_id(spec) for spec in planned}
    center = load_submission(folder).search_space.center()
    for row in trials.to_dict("records"):
        assert json.loads(row["hparams_json"]) == center
        assert row["status"] in FINISHED
        if row["status"] == TrialStatus.BUDGET_EXHAUSTED:
            assert row["steps"] == max_steps
        else:
            assert row["steps"] <= max_steps
    _assert_ruleset(
        trials,
        {
            "name": "self",
            "budget_factor": 0.25,
            "num_studies": 2,
            "seed": 0,
            "search": "quasi-random",
        },
    )


def test_compute_spends_budget_s_per_study_within_one_trial(tmp_path: Path, data_dir: Path) -> None:
    folder = write_submission(tmp_path / "submissions", "sgd-ok")
    # Short trials against the budget (about 0.5 s each idle): even at several times that on a
    # loaded machine a study needs two or more trials to spend it.
    budget_s = 3.0
    ruleset = ComputeRuleset(num_studies=2, budget_s=budget_s)
    lanes = _lanes(ruleset, [folder], data_dir, {"max_steps": 40})
    results = tmp_path / "results"

    _sweep(lanes, results)

    trials = _trials(results)
    _assert_once_each(trials, expected=len(trials))
    assert set(trials["study"]) == {0, 1}
    for key, lane in trials.groupby(LANE_KEY):
        lane = lane.sort_values("trial_index")
        assert list(lane["trial_index"]) == list(range(len(lane))), key
        spent_s = float(lane["wall_time_s"].sum())
        last_s = float(lane["wall_time_s"].iloc[-1])
        assert len(lane) >= 2, f"{key}: one trial spent the budget; the check needs two"
        assert spent_s >= budget_s, (key, list(lane["wall_time_s"]))
        assert spent_s - last_s < budget_s, (key, list(lane["wall_time_s"]))
    _assert_ruleset(
        trials,
        {
            "name": "compute",
            "budget_s": budget_s,
            "num_studies": 2,
            "seed": 0,
            "search": "quasi-random",
        },
    )

    files = _trial_files(results)
    assert _sweep(lanes, results) == []  # the budget is spent: a second run adds nothing
    assert _trial_files(results) == files


# -- 3. a driver killed at any point finishes on --resume ---------------------------------------

N_TRIALS = 3
KILL_POINTS = {
    "after_manifest": lambda results: (results / "_sweep" / "manifest.json").exists(),
    "after_first_row": lambda results: _trial_files(results) >= 1,
    "all_but_one_stored": lambda results: _trial_files(results) >= N_TRIALS - 1,
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_driver_sigkilled_then_resumed_stores_every_trial_once(
    point: str, tmp_path: Path, data_dir: Path
) -> None:
    folder = write_submission(tmp_path / "submissions", "sgd-ok")
    results = tmp_path / "results"
    options = f"--workloads digits --trials {N_TRIALS} --studies 1 --cpus 2 --quiet".split()
    paths = ["--results", str(results), "--data-dir", str(data_dir)]
    command = [str(BIN / "optbench"), "sweep", str(folder), *options, *paths]

    with _started(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as driver:
        _wait_for(lambda: KILL_POINTS[point](results), driver, point)
        os.kill(driver.pid, signal.SIGKILL)  # the driver only: trials it started may run on
        driver.wait(timeout=30)
        stored_at_kill = _trial_files(results)
        if point == "after_manifest":
            assert stored_at_kill == 0, "a trial was stored before the kill: too late for (a)"
        assert stored_at_kill < N_TRIALS, "the sweep finished before the kill"

        resumed = _optbench("sweep", "--resume", "--quiet", "--results", str(results))

    assert resumed.returncode == 0, resumed.stderr
    trials = _trials(results)
    _assert_once_each(trials, expected=N_TRIALS * 1 * 1)
    assert _trial_files(results) == N_TRIALS
    assert set(trials["status"]) <= FINISHED, trials[["status", "error"]]
    live = ResultsStore(results).live_root
    for trial_id in trials["trial_id"]:
        assert not (live / trial_id / "checkpoint.pt").exists(), f"{trial_id}: checkpoint left"
    assert (results / "leaderboard.md").is_file()


# -- 4, 7. a finished CLI sweep: its search algorithm is fixed; its status ---------------------


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """A finished quasi-random `optbench sweep` of two submissions (one failing) x 2 trials."""
    root = tmp_path_factory.mktemp("finished-sweep")
    folders = [write_submission(root, "sgd-ok"), write_submission(root, "sgd-raise", Fault.RAISE)]
    results = root / "results"
    args = "--workloads digits --trials 2 --studies 1 --cpus 2 --quiet".split()
    args += ["--results", str(results), "--data-dir", str(data_dir)]
    done = _optbench("sweep", *map(str, folders), *args)
    assert done.returncode == 0, done.stderr
    return {"folders": folders, "args": args, "results": results}


def test_sweep_refuses_another_search_algorithm_on_the_same_results(
    finished_sweep: dict[str, Any],
) -> None:
    results = finished_sweep["results"]
    files = sorted(p.name for p in (results / "trials").iterdir())
    manifest = (results / "_sweep" / "manifest.json").read_text()
    live = ResultsStore(results).live_root
    live_before = sorted(live.rglob("*")) if live.exists() else []

    refused = _optbench(
        "sweep", *map(str, finished_sweep["folders"]), *finished_sweep["args"], "--search", "tpe"
    )

    assert refused.returncode == 2, refused.stderr
    message = refused.stderr.strip().splitlines()[-1]
    assert message.startswith("optbench: error:") and str(results) in message
    assert "--search quasi-random" in message and "--search tpe" in message
    assert sorted(p.name for p in (results / "trials").iterdir()) == files  # nothing new
    assert (results / "_sweep" / "manifest.json").read_text() == manifest
    assert (sorted(live.rglob("*")) if live.exists() else []) == live_before


def test_status_counts_a_finished_sweep_and_refuses_a_folder_without_one(
    finished_sweep: dict[str, Any], tmp_path: Path
) -> None:
    results = finished_sweep["results"]
    trials = _trials(results)

    shown = _optbench("status", "--results", str(results), timeout_s=120)

    assert shown.returncode == 0, shown.stderr
    rows = [line.split("|")[1:-1] for line in shown.stdout.splitlines() if line.startswith("| ")]
    table = {
        (cells[0].strip(), cells[1].strip()): [c.strip() for c in cells[2:]] for cells in rows[1:]
    }
    assert rows[0][0].strip() == "submission" and rows[0][2].strip() == "done"
    assert set(table) == {("sgd-ok", "digits@smoke"), ("sgd-raise", "digits@smoke")}
    ok = trials[trials["submission"] == "sgd-ok"]
    assert table["sgd-ok", "digits@smoke"][0] == str(ok["status"].isin(FINISHED).sum())
    done, running, queued, failed = table["sgd-raise", "digits@smoke"][:4]
    assert (done, running, queued, failed) == ("0", "0", "0", "2")
    assert "finished: every planned trial is in the store" in shown.stdout

    empty = tmp_path / "no-sweep"
    empty.mkdir()
    refused = _optbench("status", "--results", str(empty), timeout_s=120)
    assert refused.returncode == 2
    expected = f"optbench: error: {empty}: no sweep was started here (no manifest.json)"
    assert refused.stderr.strip() == expected


# -- 5. TPE and ASHA ---------------------------------------------------------------------------


def _search_sweep(
    tmp_path: Path, data_dir: Path, search: str, num_trials: int, max_steps: int
) -> tuple[Path, Any, Path]:
    """A one-study external sweep with `search`: every trial stored once, the search recorded."""
    folder = write_submission(tmp_path / "submissions", "sgd-ok")
    ruleset = ExternalRuleset(num_trials=num_trials, num_studies=1, search=search)
    results = tmp_path / "results"
    _sweep(_lanes(ruleset, [folder], data_dir, {"max_steps": max_steps}), results)
    trials = _trials(results)
    _assert_once_each(trials, expected=num_trials)
    _assert_ruleset(
        trials,
        {
            "name": "external",
            "num_trials": num_trials,
            "num_studies": 1,
            "seed": 0,
            "search": search,
        },
    )
    return folder, trials, results


def test_tpe_sweep_stores_its_trials_with_search_tpe(tmp_path: Path, data_dir: Path) -> None:
    folder, trials, _ = _search_sweep(tmp_path, data_dir, "tpe", num_trials=3, max_steps=80)
    assert set(trials["status"]) <= NORMAL
    space = load_submission(folder).search_space
    for text in trials["hparams_json"]:
        space.validate_point(json.loads(text))


def test_asha_sweep_stores_every_trial_normal_or_stopped(tmp_path: Path, data_dir: Path) -> None:
    _, trials, results = _search_sweep(tmp_path, data_dir, "asha", num_trials=4, max_steps=200)
    assert set(trials["status"]) <= NORMAL | {str(TrialStatus.STOPPED)}, trials["status"]
    evals = ResultsStore(results).read_evals()
    for row in trials[trials["status"] == TrialStatus.STOPPED].to_dict("records"):
        assert 0 < row["steps"] < 200  # stopped early, with the eval points it reached
        assert (evals["trial_id"] == row["trial_id"]).any()
    live = ResultsStore(results).live_root
    assert not live.exists() or not any(live.iterdir())


# -- 6. --ray-address: a running Ray cluster ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_sweep_attaches_to_a_running_ray_cluster(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_submission(tmp_path / "submissions", "sgd-ok")
    lanes = _lanes(
        ExternalRuleset(num_trials=2, num_studies=1), [folder], data_dir, {"max_steps": 40}
    )
    other = _lanes(
        ExternalRuleset(num_trials=1, num_studies=1, seed=1), [folder], data_dir, {"max_steps": 40}
    )
    results, local_results = tmp_path / "results", tmp_path / "local-results"
    port = _free_port()
    # Ray writes the head's address to <temp dir>/ray_current_cluster, where any ray.init() on
    # this machine without an address would find it: a private temp dir keeps it out of others'
    # way (short, for Ray's socket paths).
    ray_temp = Path(tempfile.mkdtemp(prefix="optbench-rayhead-", dir="/tmp"))
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(port),
        "--num-cpus",
        "2",
        "--include-dashboard",
        "false",
        "--temp-dir",
        str(ray_temp),
        "--block",
    ]
    log = tmp_path / "ray-head.log"
    try:
        with open(log, "w") as out, _started(command, stdout=out, stderr=subprocess.STDOUT) as head:
            try:
                _wait_for(
                    lambda: _accepts_connections(port),
                    head,
                    "the Ray head",
                    timeout_s=120,
                    poll_s=0.2,
                )
                summaries = _sweep(lanes, results, ray_address=f"127.0.0.1:{port}")
                # Without --ray-address a sweep starts its own Ray, even where RAY_ADDRESS (or a
                # `ray start`'s address file) names a running cluster.
                monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
                local_summaries = _sweep(other, local_results)
                monkeypatch.delenv("RAY_ADDRESS")
            finally:
                head.send_signal(signal.SIGTERM)  # --block: it stops the processes it started
                try:
                    head.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass  # _started SIGKILLs what is left of its session
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)

    assert len(summaries) == 2, log.read_text()[-3000:]
    trials = _trials(results)
    _assert_once_each(trials, expected=2)
    assert set(trials["status"]) <= FINISHED
    assert [s["status"] in FINISHED for s in local_summaries] == [True]
