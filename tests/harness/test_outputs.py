"""`harness.outputs`: what optbench may replace (its own marked outputs), and what it refuses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import outputs
from harness.errors import UsageError
from harness.outputs import (
    BENCH_OPTIMIZERS_JSON,
    LEADERBOARD_FILES,
    MARK,
    REPORT_FOLDER,
    check_files_in,
    check_output,
    check_results_root,
    replace_folder,
    write_output_text,
)

LEADERBOARD_MD = LEADERBOARD_FILES["leaderboard.md"]


def _old_report(folder: Path) -> Path:
    """A report folder as optbench wrote it before the mark existed."""
    (folder / "figures").mkdir(parents=True)
    (folder / "tables").mkdir()
    (folder / "report.html").write_text("<!DOCTYPE html>")
    (folder / "report.md").write_text("# Fixed-model report")
    (folder / "figures" / "a.png").write_bytes(b"\x89PNG")
    (folder / "tables" / "a.csv").write_text("x\n1\n")
    return folder


def _staged_report(parent: Path, *files: str) -> Path:
    staging = parent / ".staging"
    for name in files:
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_text(name)
    return staging


def test_absent_and_empty_targets_may_be_written(tmp_path: Path) -> None:
    check_output(tmp_path / "new" / "report", REPORT_FOLDER, "--out")
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", REPORT_FOLDER, "--out")
    (tmp_path / "leaderboard.md").write_text("")
    check_output(tmp_path / "leaderboard.md", LEADERBOARD_MD, "--out")


def test_a_report_folder_of_an_older_optbench_is_recognised_by_its_exact_shape(
    tmp_path: Path,
) -> None:
    check_output(_old_report(tmp_path / "old"), REPORT_FOLDER, "--out")
    (tmp_path / "old" / "notes.txt").write_text("mine")
    with pytest.raises(
        UsageError,
        match=r"--out .*old: holds 1 file\(s\) optbench did not write "
        r"\(notes.txt\)",
    ):
        check_output(tmp_path / "old", REPORT_FOLDER, "--out")
    partial = tmp_path / "partial"  # a user's folder that happens to hold a report.md
    partial.mkdir()
    (partial / "report.md").write_text("my own report")
    with pytest.raises(UsageError, match=r"\(report.md\)"):
        check_output(partial, REPORT_FOLDER, "--out")
    _old_report(tmp_path / "other")
    (tmp_path / "other" / "figures" / "plot.svg").write_text("<svg/>")  # not a PNG
    with pytest.raises(UsageError, match="figures/plot.svg"):
        check_output(tmp_path / "other", REPORT_FOLDER, "--out")


def test_replace_folder_marks_what_it_wrote_and_replaces_only_its_own(tmp_path: Path) -> None:
    out = tmp_path / "report"
    replace_folder(
        _staged_report(tmp_path, "report.md", "figures/a.png"), out, REPORT_FOLDER, "--out"
    )
    mark = json.loads((out / MARK).read_text())
    assert mark == {"kind": "report", "files": ["figures/a.png", "report.md"]}
    # A newer report replaces it whole: a figure the new one lacks goes with the old folder.
    replace_folder(_staged_report(tmp_path, "report.md"), out, REPORT_FOLDER, "--out")
    assert sorted(p.name for p in out.rglob("*")) == [MARK, "report.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # nothing left beside it
    (out / "mine.txt").write_text("mine")
    staging = _staged_report(tmp_path, "report.md")
    with pytest.raises(UsageError, match=r"\(mine.txt\)"):
        replace_folder(staging, out, REPORT_FOLDER, "--out")
    assert (out / "mine.txt").read_text() == "mine"


def test_a_mark_of_another_kind_or_unreadable_owns_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a.csv").write_text("1")
    for mark in ('{"kind": "dataset", "files": ["a.csv"]}', "[1, 2]", "{not json"):
        (folder / MARK).write_text(mark)
        with pytest.raises(UsageError, match="did not write"):
            check_output(folder, REPORT_FOLDER, "--out")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{root}", "is the results store the output is built from"),
        ("{root}/..", "holds the results store"),
        ("{root}/trials", "inside the results store's own trials/ folder"),
        ("{root}/_sweep/report", "inside the results store's own _sweep/ folder"),
    ],
)
def test_a_report_never_replaces_its_results_store(
    tmp_path: Path, target: str, message: str
) -> None:
    root = tmp_path / "store"
    for name in ("trials", "evals", "_sweep"):
        (root / name).mkdir(parents=True)
    with pytest.raises(UsageError, match=message):
        check_output(Path(target.format(root=root)), REPORT_FOLDER, "--out", results_root=root)
    check_output(root / "report-pareto", REPORT_FOLDER, "--out", results_root=root)


def test_another_results_store_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "other" / "trials").mkdir(parents=True)
    (tmp_path / "other" / "trials" / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(UsageError, match="other: is a results store"):
        check_output(tmp_path / "other", REPORT_FOLDER, "--out")


def test_file_outputs_replace_only_their_own_kind(tmp_path: Path) -> None:
    own = tmp_path / "leaderboard.md"
    write_output_text(own, "# optbench leaderboard (results)\n", LEADERBOARD_MD, "--out")
    write_output_text(own, "# optbench leaderboard (results)\n\nnewer\n", LEADERBOARD_MD, "--out")
    assert own.read_text().endswith("newer\n")
    theirs = tmp_path / "bench.json"
    theirs.write_text('{"schema": "somebody.else"}')
    with pytest.raises(UsageError, match="bench.json: exists and is not a bench optimizers report"):
        write_output_text(theirs, "{}", BENCH_OPTIMIZERS_JSON, "--output")
    assert theirs.read_text() == '{"schema": "somebody.else"}'
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(UsageError, match="folder.md: is a folder, not a file"):
        check_output(tmp_path / "folder.md", LEADERBOARD_MD, "--out")


def test_check_files_in_refuses_a_file_and_a_foreign_leaderboard(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="--out .*afile: is a file, not a folder"):
        check_files_in(tmp_path / "afile", LEADERBOARD_FILES, "--out")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "leaderboard.html").write_text("<html>my page</html>")
    with pytest.raises(UsageError, match="leaderboard.html: exists and is not a leaderboard"):
        check_files_in(tmp_path / "site", LEADERBOARD_FILES, "--out")


def test_results_root_must_be_a_writable_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_results_root(tmp_path / "new")
    assert not (tmp_path / "new").exists()  # checked, not created
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="--results .*afile: is a file, not a folder"):
        check_results_root(tmp_path / "afile")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "trials").write_text("x")
    with pytest.raises(UsageError, match=r"store/trials is a file, not a folder"):
        check_results_root(tmp_path / "store")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    # Permission bits do not stop root: play the answer os.access gives any other user.
    real = outputs._may_write
    monkeypatch.setattr(outputs, "_may_write", lambda p: real(p) and Path(p) != read_only)
    try:
        with pytest.raises(UsageError, match="read-only is not writable"):
            check_results_root(read_only)
        with pytest.raises(UsageError, match="read-only is not writable"):
            check_results_root(read_only / "sub")
    finally:
        read_only.chmod(0o755)
    assert os.listdir(read_only) == []
