"""Shared test fixtures: the repository paths, a data folder shared across tests, CI strictness."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

try:  # make test runs the suite under pytest-xdist; a plain pytest run needs no xdist
    from xdist.scheduler import LoadScopeScheduling
except ImportError:
    LoadScopeScheduling = None

REPO = Path(__file__).resolve().parent.parent

# `make test` runs the suite in two pytest-xdist workers; these files run in one of them, one
# after another, first (together they take longest): those that use the one local SLURM cluster
# (test_local_cluster stops and restarts it, the others submit to it or ask it for its state),
# then the sweep fault tests, whose kill points and time budgets want the CPU to themselves (run
# beside another worker, a compute-ruleset trial once spent the whole budget alone, and a trial
# whose driver was killed was stored as failed). xdist's `loadgroup` marks cannot do this: its
# worker rewrites `Item._nodeid`, which pytest 9 no longer reads.
LAST_SERIAL_FILE = "test_faults.py"
SERIAL_FILES = frozenset({"test_local_cluster.py", "test_profiles.py", "test_slurm.py",
                          "test_slurm_recovery.py", "test_readme_commands.py",
                          "test_with_services.py", "test_faults.py"})  # fmt: skip


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder per test session, so smoke datasets are built once."""
    return tmp_path_factory.mktemp("data")


def run_in_fresh_process(spec: Any, live_root: Path | None = None) -> Any:
    """`run_trial(spec, live_root)` in a process forked from a clean server, as sweeps run trials:
    the measured peak is the trial's, not hidden by what this test process allocated before."""
    from harness.runner import run_trial  # pickled by reference: conftest modules cannot be

    context = mp.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(run_trial, spec, str(live_root) if live_root else None).result()


@pytest.fixture
def fresh_process() -> Callable[..., Any]:
    """`run_in_fresh_process`, for tests that read a trial's memory or must leave nothing behind."""
    return run_in_fresh_process


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The serial files first, the fault tests last of them, so that under xdist one worker takes
    them while the other takes the rest (order within kept)."""
    items.sort(key=lambda item: (item.path.name not in SERIAL_FILES,
                                 item.path.name == LAST_SERIAL_FILE))  # fmt: skip


if LoadScopeScheduling is not None:

    class FileScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """xdist's `loadfile`, with the serial files one work unit (one worker, in order)."""

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "serial" if Path(path).name in SERIAL_FILES else path

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
        """`--dist loadfile` (what `make test` asks for) schedules by `FileScheduling`."""
        return FileScheduling(config, log) if config.getvalue("dist") == "loadfile" else None


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """In CI a skipped test is a failure: nothing may be skipped silently."""
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI") == "true" and skipped:
        terminalreporter.write_line(f"CI: {len(skipped)} test(s) skipped; skips are failures in CI")
        config._optbench_ci_skips = True  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") == "true":
        skipped = session.config.pluginmanager.get_plugin("terminalreporter")
        stats = getattr(skipped, "stats", {}) if skipped else {}
        if stats.get("skipped"):
            session.exitstatus = 1
