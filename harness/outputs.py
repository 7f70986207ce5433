"""What optbench may write over: marks of ownership, and the checks every command makes first.

optbench replaces only what it wrote itself, and every output it writes carries a mark saying so:

    output                      written by                      its mark
    OUT/, a report folder       report, scaling                 OUT/.optbench-output: JSON
                                                                {"kind": "report", "files": [...]}
                                                                naming every file written there
    leaderboard.md, .html       leaderboard, sweep, submit      the first line `# optbench
                                                                leaderboard`; the HTML's <title>
    FILE.md and FILE.json       bench optimizers, overhead,     the first line `# optbench bench
                                launchers                       optimizers` (`overhead`,
                                                                `launchers`); the JSON's "schema"
    DIR/cifar10/                data prepare                    its manifest.json naming its files
                                                                (`workloads.datasets`)

A report folder from before the mark existed is recognised by its exact shape: report.html,
report.md, figures/ holding only PNGs, tables/ holding only CSVs, and nothing else. The file marks
are the first bytes optbench has always written, so older files are recognised as they are.

A target may be replaced when it is absent, empty, or an output of the same kind whose mark covers
everything in it. Anything else is refused with one line (`UsageError`, exit status 2) before
anything is written: a file where a folder is expected or the reverse, a folder holding a file
optbench did not write, a folder that cannot be written, and, for a report folder, the results
store it reads, a folder holding that store, or a folder inside one of the store's own folders.
Results stores are never replaced: they only grow (`harness.results`), and `check_results_root`
refuses one that cannot be written before any trial starts. A folder is replaced by renaming a
complete staged copy into place (`replace_folder`), a file by `write_text_atomic`; each write checks
its target again just before the rename.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.errors import UsageError

__all__ = [
    "BENCH_LAUNCHERS_JSON",
    "BENCH_LAUNCHERS_MD",
    "BENCH_OPTIMIZERS_JSON",
    "BENCH_OPTIMIZERS_MD",
    "BENCH_OVERHEAD_JSON",
    "BENCH_OVERHEAD_MD",
    "LEADERBOARD_FILES",
    "MARK",
    "OutputKind",
    "REPORT_FOLDER",
    "STORE_FOLDERS",
    "check_files_in",
    "check_output",
    "check_results_root",
    "check_writable_folder",
    "foreign_files",
    "replace_folder",
    "write_output_text",
]

MARK = ".optbench-output"
# The folders a results store keeps its own state in (`harness.results`, `sweeps`).
STORE_FOLDERS = ("trials", "evals", "_live", "_sweep", "_slurm")
_SHOWN = 3  # foreign files a message names
_HEAD_BYTES = 4096


@dataclass(frozen=True, slots=True)
class OutputKind:
    """One kind of output optbench writes.

    Attributes:
      name: what it is, in messages ("report folder", "leaderboard").
      is_folder: a folder (True) or a single file (False).
      strangers: the files of an existing, non-empty target that optbench did not write as this
        kind (relative paths; empty when the whole target is optbench's own).
      mark: the `kind` a folder's mark file records (folders that `replace_folder` writes).
    """

    name: str
    is_folder: bool
    strangers: Callable[[Path], list[str]]
    mark: str | None = None


# -- checks --------------------------------------------------------------------------------------


def check_writable_folder(path: str | os.PathLike[str], flag: str) -> None:
    """Refuses `path` unless it is a folder, or can be made one, that this process may write.

    Raises:
      UsageError: naming `flag` and the part of `path` that is in the way.
    """
    path = Path(path)
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is" if existing == path else f"lies under {existing}, which is"
        raise UsageError(f"{flag} {path}: {what} a file, not a folder")
    if not _may_write(existing):
        raise UsageError(f"{flag} {path}: {existing} is not writable")


def check_results_root(root: str | os.PathLike[str], flag: str = "--results") -> None:
    """Refuses a results root that trials cannot be stored in; creates nothing.

    Run before any trial starts: a trial on a CPU takes seconds, a cluster job hours.

    Raises:
      UsageError: the root (or one of its store folders) is a file, or cannot be written.
    """
    root = Path(root)
    check_writable_folder(root, flag)
    for name in STORE_FOLDERS:
        folder = root / name
        if os.path.lexists(folder) and not folder.is_dir():
            raise UsageError(
                f"{flag} {root}: {folder} is a file, not a folder (a results store "
                f"keeps its {name}/ there)"
            )
        if folder.is_dir() and not _may_write(folder):
            raise UsageError(f"{flag} {root}: {folder} is not writable")


def check_output(
    path: str | os.PathLike[str],
    kind: OutputKind,
    flag: str,
    results_root: str | os.PathLike[str] | None = None,
) -> None:
    """Refuses to write `kind` at `path` unless `path` is absent, empty, or optbench's own `kind`.

    Args:
      path: the file or folder to be written (a folder is replaced whole).
      kind: what is written there.
      flag: the option or word that named `path`, for the message ("--out").
      results_root: the results store the output is built from: `path` may not be that store,
        hold it, or lie inside one of its own folders.

    Raises:
      UsageError: one line naming `flag`, `path` and what is in the way.
    """
    path = Path(path)
    if results_root is not None:
        _check_apart_from_store(path, Path(results_root), flag)
    if not os.path.lexists(path):
        check_writable_folder(path, flag)  # what it would be created in
        return
    if kind.is_folder and not path.is_dir():
        raise UsageError(f"{flag} {path}: is a file, not a folder")
    if not kind.is_folder and path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder, not a file")
    if not _may_write(path.parent):
        raise UsageError(f"{flag} {path}: {path.parent} is not writable")
    if _is_empty(path):
        return
    if kind.is_folder and any((path / name).is_dir() for name in ("trials", "evals")):
        raise UsageError(
            f"{flag} {path}: is a results store; optbench replaces only its own "
            f"{kind.name}: give another folder"
        )
    strangers = kind.strangers(path)
    if not strangers:
        return
    if not kind.is_folder:
        raise UsageError(
            f"{flag} {path}: exists and is not a {kind.name} optbench wrote; "
            "optbench replaces only its own: move it, or write elsewhere"
        )
    shown = ", ".join(strangers[:_SHOWN]) + (
        f", +{len(strangers) - _SHOWN} more" if len(strangers) > _SHOWN else ""
    )
    raise UsageError(
        f"{flag} {path}: holds {len(strangers)} file(s) optbench did not write "
        f"({shown}); optbench replaces only its own {kind.name}: move them, or "
        "write elsewhere"
    )


def check_files_in(
    folder: str | os.PathLike[str],
    files: Mapping[str, OutputKind],
    flag: str,
    results_root: str | os.PathLike[str] | None = None,
) -> None:
    """Refuses to write `files` (name -> kind) into `folder` unless each may be (`check_output`).

    `folder` itself is kept (other files in it are left alone); it may be the results store, but
    not a folder inside one of the store's own folders.

    Raises:
      UsageError: one line naming `flag` and what is in the way.
    """
    folder = Path(folder)
    check_writable_folder(folder, flag)
    if results_root is not None:
        _check_outside_store_folders(folder, Path(results_root), flag)
    for name, kind in files.items():
        check_output(folder / name, kind, flag)


def _check_apart_from_store(path: Path, root: Path, flag: str) -> None:
    target, store = path.resolve(), root.resolve()
    if target == store:
        raise UsageError(
            f"{flag} {path}: is the results store the output is built from; "
            "replacing it would delete the store: give a folder of its own (a report "
            "goes to RESULTS/report-KIND by default)"
        )
    if store.is_relative_to(target):
        raise UsageError(
            f"{flag} {path}: holds the results store {root}; replacing it would "
            "delete the store: give a folder of its own"
        )
    _check_outside_store_folders(path, root, flag)


def _check_outside_store_folders(path: Path, root: Path, flag: str) -> None:
    target, store = path.resolve(), root.resolve()
    for name in STORE_FOLDERS:
        if target.is_relative_to(store / name):
            raise UsageError(
                f"{flag} {path}: lies inside the results store's own {name}/ "
                f"folder ({root / name}): give a folder outside it"
            )


def _may_write(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _is_empty(path: Path) -> bool:
    if path.is_dir():
        return next(path.iterdir(), None) is None
    return path.stat().st_size == 0


# -- writing -------------------------------------------------------------------------------------


def write_output_text(path: str | os.PathLike[str], text: str, kind: OutputKind, flag: str) -> None:
    """Writes the file output `kind` at `path` atomically, checking `path` again first.

    Raises:
      UsageError: `path` may not be replaced (`check_output`).
    """
    path = Path(path)
    check_output(path, kind, flag)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def replace_folder(staging: Path, out: Path, kind: OutputKind, flag: str) -> None:
    """Marks the complete folder `staging` as `kind` and moves it to `out` (beside it).

    The mark names every file in `staging`. `out` is checked again (`check_output`); an old `out`
    is moved aside first and removed after, so `out` is always either the old folder or the new.

    Raises:
      UsageError: `out` may not be replaced.
    """
    assert kind.is_folder and kind.mark is not None, kind
    mark = {"kind": kind.mark, "files": _entries(staging)}
    write_text_atomic(staging / MARK, json.dumps(mark, indent=1) + "\n")
    check_output(out, kind, flag)
    old = None
    if os.path.lexists(out):
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- marks ---------------------------------------------------------------------------------------


def _entries(folder: Path) -> list[str]:
    """Every file (and link) under `folder`, as sorted relative POSIX paths; folders left out."""
    found = []
    for top, dirs, files in os.walk(folder):
        base = Path(top)
        linked = [d for d in dirs if (base / d).is_symlink()]  # os.walk does not enter these
        found += [(base / name).relative_to(folder).as_posix() for name in files + linked]
    return sorted(found)


def foreign_files(folder: Path, listed: set[str]) -> list[str]:
    """The files under `folder` (relative POSIX paths) that are not in `listed`."""
    return [entry for entry in _entries(folder) if entry not in listed]


def _marked_files(folder: Path, kind: str) -> set[str] | None:
    """The files `folder`'s mark says optbench wrote there as `kind` (None: no such mark)."""
    try:
        mark = json.loads((folder / MARK).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(mark, dict) or mark.get("kind") != kind:
        return None
    files = mark.get("files")
    if not isinstance(files, list):
        return None
    return {f for f in files if isinstance(f, str)}


_OLD_REPORT_FILES = {
    "report.html": "file",
    "report.md": "file",
    "figures": ".png",
    "tables": ".csv",
}


def _is_old_report(folder: Path) -> bool:
    """Whether `folder` has the exact shape of a report written before the mark existed."""
    if sorted(os.listdir(folder)) != sorted(_OLD_REPORT_FILES):
        return False
    for name, shape in _OLD_REPORT_FILES.items():
        path = folder / name
        if path.is_symlink():
            return False
        if shape == "file":
            if not path.is_file():
                return False
        elif not path.is_dir() or any(
            p.is_symlink() or not p.is_file() or p.suffix != shape for p in path.iterdir()
        ):
            return False
    return True


def _fits_old_report(entry: str) -> bool:
    folder, _, name = entry.rpartition("/")
    if not folder:
        return _OLD_REPORT_FILES.get(name) == "file"
    return "/" not in folder and _OLD_REPORT_FILES.get(folder) == Path(name).suffix


def _report_strangers(folder: Path) -> list[str]:
    listed = _marked_files(folder, "report")
    if listed is not None:
        return foreign_files(folder, listed | {MARK})
    if _is_old_report(folder):
        return []
    entries = _entries(folder)  # name what breaks the old shape, else everything (none is known)
    return [entry for entry in entries if not _fits_old_report(entry)] or entries


def _head(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(_HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _file_kind(name: str, owns: Callable[[Path], bool]) -> OutputKind:
    return OutputKind(name, is_folder=False, strangers=lambda p: [] if owns(p) else [p.name])


def _first_line(prefix: str | tuple[str, ...]) -> Callable[[Path], bool]:
    return lambda path: _head(path).startswith(prefix)


def _html_titled(title: str) -> Callable[[Path], bool]:
    def owns(path: Path) -> bool:
        head = _head(path)
        return head.startswith("<!DOCTYPE html>") and f"<title>{title}" in head

    return owns


def _json_schema(schema: str, old_keys: tuple[str, ...] = ()) -> Callable[[Path], bool]:
    """Owns a JSON object whose `schema` is `schema`, or, with `old_keys`, one without a schema
    that holds them all (what optbench wrote before it named the schema)."""

    def owns(path: Path) -> bool:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(data, dict):
            return False
        if old_keys and "schema" not in data and all(key in data for key in old_keys):
            return True
        return data.get("schema") == schema

    return owns


REPORT_FOLDER = OutputKind(
    "report folder", is_folder=True, strangers=_report_strangers, mark="report"
)
LEADERBOARD_FILES = {
    "leaderboard.md": _file_kind("leaderboard", _first_line("# optbench leaderboard")),
    "leaderboard.html": _file_kind("leaderboard", _html_titled("optbench leaderboard")),
}
BENCH_OPTIMIZERS_MD = _file_kind(
    "bench optimizers report", _first_line("# optbench bench optimizers")
)
BENCH_OPTIMIZERS_JSON = _file_kind(
    "bench optimizers report", _json_schema("optbench.bench_optimizers")
)
# "bench-overhead" and "Launch overhead": the first lines these reports had before `optbench bench`
# grouped them; their JSON had no schema then.
BENCH_OVERHEAD_MD = _file_kind(
    "bench overhead report", _first_line(("# optbench bench overhead", "# optbench bench-overhead"))
)
BENCH_OVERHEAD_JSON = _file_kind("bench overhead report", _json_schema("optbench.bench_overhead"))
BENCH_LAUNCHERS_MD = _file_kind(
    "bench launchers report", _first_line(("# optbench bench launchers", "# Launch overhead ("))
)
BENCH_LAUNCHERS_JSON = _file_kind(
    "bench launchers report",
    _json_schema("optbench.bench_launchers", old_keys=("direct_s", "ray_init_s", "ray_s")),
)
