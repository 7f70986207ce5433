"""Bad paths never cost data: every command that writes refuses, in one line and with exit status
2, a target that is not its own to replace, before anything runs or is written.

Each case runs `sweeps.cli.main` in this process; the work a refused command must never reach
(training, a sweep, a benchmark) is replaced by a function that fails the test. The committed
example store is copied into the test's folder, never written in place.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from harness import outputs
from harness.outputs import MARK
from sweeps.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_STORE = REPO / "results" / "smoke-suite" / "fixed-model"
SWEEP = ("adamw", "--workloads", "digits", "--trials", "1", "--studies", "1", "--quiet")


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a folder)."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("work started for a command line that should have been refused")


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training, sweeping and benchmarking fail the test if a refused command reaches them."""
    for target in (
        "harness.isolation.run_isolated",
        "sweeps.execute.run_lanes",
        "sweeps.calibrate.calibrate",
        "sweeps.bench.optimizers.run_benchmark",
        "sweeps.bench.overhead.measure_overhead",
        "sweeps.bench.launchers.measure",
    ):
        monkeypatch.setattr(target, _never)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A copy of the committed example store, its report folder written by an older optbench."""
    copy = tmp_path / "R"
    shutil.copytree(EXAMPLE_STORE, copy)
    return copy


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *fragments: str) -> str:
    """Runs `argv`, asserts exit status 2 with one line on stderr holding `fragments`."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optbench: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# -- report and leaderboard: only optbench's own outputs are replaced -----------------------------


def test_report_out_the_store_is_refused_and_the_old_report_is_replaced_in_place(
    store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _snapshot(store)
    report = ["report", "fixed-model", "--results", str(store), "--bootstrap", "20"]
    _refused([*report, "--out", str(store)], capsys, f"--out {store}: is the results store")
    monkeypatch.chdir(tmp_path)
    _refused([*report, "--out", "."], capsys, "--out .: holds the results store")
    assert _snapshot(store) == before
    old = store / "report-fixed-model"
    assert not (old / MARK).exists()  # written before the mark existed: known by its shape
    assert main(report) == 0
    assert (old / MARK).is_file() and (old / "report.html").read_bytes() != before[
        "report-fixed-model/report.html"
    ]
    assert _snapshot(store / "trials") == {
        k.removeprefix("trials/"): v for k, v in before.items() if k.startswith("trials/")
    }


def test_leaderboard_replaces_its_own_and_refuses_anything_else(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["leaderboard", "--results", str(store)]) == 0  # an older optbench's leaderboard
    assert (store / "leaderboard.md").read_text().startswith("# optbench leaderboard")
    site = tmp_path / "site"
    site.mkdir()
    (site / "leaderboard.md").write_text("# my notes\n")
    _refused(
        ["leaderboard", "--results", str(store), "--out", str(site)],
        capsys,
        "leaderboard.md: exists and is not a leaderboard optbench wrote",
    )
    assert sorted(p.name for p in site.iterdir()) == ["leaderboard.md"]
    assert (site / "leaderboard.md").read_text() == "# my notes\n"
    (tmp_path / "afile").write_text("x")
    _refused(
        ["leaderboard", "--results", str(store), "--out", str(tmp_path / "afile")],
        capsys,
        "afile: is a file, not a folder",
    )


# -- results roots: checked before any trial ----------------------------------------------------


def test_run_refuses_a_results_file_or_a_read_only_store_before_training(
    tmp_path: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_work: None,
) -> None:
    run = ["run", "adamw", "--workload", "digits", "--max-steps", "1", "--data-dir", str(data_dir)]
    (tmp_path / "afile").write_text("x")
    _refused(
        [*run, "--results", str(tmp_path / "afile")],
        capsys,
        "--results",
        "afile: is a file, not a folder",
    )
    read_only = tmp_path / "read-only"
    (read_only / "trials").mkdir(parents=True)
    real = outputs._may_write  # root ignores permission bits: play what any other user gets
    monkeypatch.setattr(outputs, "_may_write", lambda p: real(p) and p != read_only / "trials")
    _refused([*run, "--results", str(read_only)], capsys, "read-only/trials is not writable")
    assert (tmp_path / "afile").read_text() == "x" and _snapshot(read_only) == {"trials": None}


@pytest.mark.parametrize(
    "command",
    [
        ["sweep", *SWEEP],
        ["submit", "adamw", "--references", "sgd-nesterov", "--trials", "1", "--studies", "1"],
        ["calibrate", "digits", "--seeds", "1"],
        ["import-algoperf", "{tmp}"],
    ],
)
def test_commands_that_store_trials_refuse_a_results_file_first(
    command: list[str],
    tmp_path: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    no_work: None,
) -> None:
    (tmp_path / "afile").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in command]
    if argv[0] != "import-algoperf":
        argv += ["--data-dir", str(data_dir)]
    _refused([*argv, "--results", str(tmp_path / "afile")], capsys, "afile: is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_sweep_and_submit_refuse_a_foreign_leaderboard_before_sweeping(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "leaderboard.html").write_text("<html>my page</html>")
    for argv in (["sweep", *SWEEP], ["submit", "adamw", "--references", "sgd-nesterov"]):
        _refused(
            [*argv, "--results", str(results), "--data-dir", str(data_dir)],
            capsys,
            "leaderboard.html: exists and is not a leaderboard",
        )
    assert sorted(p.name for p in results.iterdir()) == ["leaderboard.html"]  # no _sweep/


def test_scaling_refuses_a_report_dir_of_other_files_before_sweeping(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "draft.md").write_text("mine")
    _refused(
        [
            "scaling",
            "nanogpt",
            "--submissions",
            "adamw",
            "--trials",
            "1",
            "--studies",
            "1",
            "--report-dir",
            str(mine),
            "--results",
            str(tmp_path / "results"),
            "--data-dir",
            str(data_dir),
        ],
        capsys,
        "--report-dir",
        "(draft.md)",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


# -- a Ray address nobody answers at --------------------------------------------------------------


def test_sweep_fails_fast_naming_a_ray_address_nobody_listens_at(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    results = tmp_path / "results"
    results.mkdir()
    started = time.monotonic()
    _refused(
        [
            "sweep",
            *SWEEP,
            "--ray-address",
            f"127.0.0.1:{port}",
            "--results",
            str(results),
            "--data-dir",
            str(data_dir),
        ],
        capsys,
        f"--ray-address 127.0.0.1:{port}: no Ray cluster answers there",
    )
    assert time.monotonic() - started < 10
    assert list(results.iterdir()) == []  # no manifest, nothing


# -- manifests: a value read from one says so -----------------------------------------------------


def _manifest(results: Path, text: str) -> Path:
    path = results / "_sweep" / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"argv": ["sweep", "adamw"], "launcher": "loc', "not readable as JSON"),
        ('{"argv": ["sweep", "adamw"], "lanes": []}', "'launcher' missing"),
        (
            json.dumps(
                {
                    "argv": ["sweep"],
                    "launcher": "local",
                    "lanes": [
                        {
                            "submission": "adamw",
                            "workload": "digits",
                            "ruleset_json": "{}",
                            "trials": 1,
                        }
                    ],
                }
            ),
            "lanes[0]: 'workload' must be NAME@SCALE",
        ),
    ],
)
def test_status_and_resume_name_the_manifest_that_is_corrupt_or_incomplete(
    text: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    path = _manifest(tmp_path, text)
    for argv in (["status"], ["sweep", "--resume"]):
        _refused([*argv, "--results", str(tmp_path)], capsys, f"in {path}: {problem}")
    assert path.read_text() == text


def test_resume_names_the_manifest_whose_command_line_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    path = _manifest(
        tmp_path,
        json.dumps(
            {"argv": ["sweep", "adamw", "--trials", "zero"], "launcher": "local", "lanes": []}
        ),
    )
    _refused(
        ["sweep", "--resume", "--results", str(tmp_path)],
        capsys,
        f"in {path}: the recorded command line `optbench sweep adamw --trials zero` does "
        "not parse: argument --trials: must be an integer >= 1",
    )
    path.write_text(
        json.dumps({"argv": ["sweep", "no-such-optimizer"], "launcher": "local", "lanes": []})
    )
    _refused(
        ["sweep", "--resume", "--results", str(tmp_path)],
        capsys,
        f"in {path} (the sweep being resumed): ",
        "no-such-optimizer",
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["_sweep", "manifest.json"]


# -- data and benchmark outputs -----------------------------------------------------------------


def test_data_prepare_keeps_a_cifar10_folder_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "data_batch_1").write_bytes(b"the user's own copy")
    before = _snapshot(tmp_path)
    _refused(
        ["data", "prepare", "cifar10", "--dir", str(tmp_path), "--mirror", "http://127.0.0.1:9"],
        capsys,
        "cifar10: holds 1 file(s) optbench did not write",
    )
    assert _snapshot(tmp_path) == before  # nothing downloaded, nothing moved aside


def test_bench_outputs_are_checked_before_measuring(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "notes.md").write_text("# my notes\n")
    bench = ["bench", "optimizers", "--device", "cpu", "--scale", "tiny", "--submissions", "adamw"]
    _refused(
        [*bench, "--output", str(tmp_path / "afile" / "bench.md")],
        capsys,
        "--output",
        "lies under",
        "afile, which is a file",
    )
    _refused(
        [*bench, "--output", str(tmp_path / "notes.md")],
        capsys,
        "notes.md: exists and is not a bench optimizers report",
    )
    _refused(
        ["bench", "overhead", "--data-dir", str(data_dir), "--output", str(tmp_path / "notes.md")],
        capsys,
        "notes.md: exists and is not a bench overhead",
    )
    _refused(
        ["bench", "launchers", "--output", str(tmp_path / "notes.md")],
        capsys,
        "notes.md: exists and is not a bench launchers report",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "notes.md"]
    assert (tmp_path / "notes.md").read_text() == "# my notes\n"
