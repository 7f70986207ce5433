"""Shared test fixtures: the repository paths, a data folder shared across tests, CI strictness."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


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
