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

# `make test` runs the suite in two pytest-xdist workers, each test file whole in one worker. The
# files that use the one local SLURM cluster run in one worker, one after another
# (test_local_cluster stops and restarts it; the others submit to it or ask it for its state):
# `SERIAL_FILES`, one work unit. xdist's `loadgroup` marks cannot do this: its worker rewrites
# `Item._nodeid`, which pytest 9 no longer reads. The longest units go first so that the short
# ones fill in at the end.
SERIAL_FILES = frozenset(
    {
        "test_local_cluster.py",
        "test_profiles.py",
        "test_slurm.py",
        "test_slurm_recovery.py",
        "test_readme_commands.py",
        "test_with_services.py",
    }
)
LONG_FILES = (
    "test_faults.py",
    "test_driver.py",
    "test_registry.py",
    "test_checkpoint.py",
    "test_scaling_sweep.py",
    "test_references.py",
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder per test session, so smoke datasets are built once."""
    return tmp_path_factory.mktemp("data")


def run_in_fresh_process(spec: Any, live_root: Path | None = None) -> Any:
    """`run_trial(spec, live_root)` in a process forked from a clean server, as sweeps run trials:
    the measured peak is the trial's, not hidden by what this test process allocated before."""
    from harness.runner import run_trial  # pickled by reference: conftest modules cannot be
    from workloads import get_workload

    context = mp.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        live = str(live_root) if live_root else None
        return pool.submit(run_trial, spec, get_workload, live).result()


@pytest.fixture
def fresh_process() -> Callable[..., Any]:
    """`run_in_fresh_process`, for tests that read a trial's memory or must leave nothing behind."""
    return run_in_fresh_process


def _schedule_rank(item: pytest.Item) -> int:
    name = item.path.name
    if name in SERIAL_FILES:
        return 0
    return 1 + LONG_FILES.index(name) if name in LONG_FILES else 1 + len(LONG_FILES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The serial files first, then the long files, then the rest (order within a file kept)."""
    items.sort(key=_schedule_rank)


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
