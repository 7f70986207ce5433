"""Finding, loading and classifying a submission folder.

A submission is a folder holding `submission.py`, `search_space.json` and a README. It is named on
the command line either by a path or by the name of a reference folder under `submissions/`.
Every `submission.py` is imported with `algoperf` / `algorithmic_efficiency` importable (optbench's
stand-in unless AlgoPerf is installed: `harness.algoperf_names`), so AlgoPerf submissions load
unmodified.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import ModuleType

from harness.algoperf_names import install_algoperf_names
from harness.errors import ContractError, UsageError
from harness.search_space import SearchSpace, load_search_space

__all__ = ["ALGOPERF_FUNCTIONS", "Level", "Submission", "load_submission", "reference_dir",
           "resolve_submission"]  # fmt: skip

# What AlgoPerf's runner requires of a submission module (`prepare_for_eval` is optional).
ALGOPERF_FUNCTIONS = ("get_batch_size", "init_optimizer_state", "update_params", "data_selection")


class Level(StrEnum):
    """Which of the three contract levels a `submission.py` implements."""

    FACTORY = "factory"  # def optimizer(params, hp, info)
    FULL_CONTROL = "full_control"  # class Submission with update(batch, step, ctx)
    ALGOPERF = "algoperf"  # AlgoPerf's init_optimizer_state / update_params


@dataclass(frozen=True, slots=True)
class Submission:
    """A loaded submission.

    Attributes:
      name: the folder's name (the leaderboard key).
      folder: the submission folder.
      module: the imported `submission.py`.
      level: the contract level it implements.
      search_space: its parsed `search_space.json`.
      source_hash: sha256 of submission.py and search_space.json (part of every trial id).
    """

    name: str
    folder: Path
    module: ModuleType
    level: Level
    search_space: SearchSpace
    source_hash: str


def reference_dir() -> Path:
    """The folder holding the reference submissions (the `submissions` package)."""
    return Path(__file__).resolve().parent.parent / "submissions"


def resolve_submission(name_or_path: str | Path) -> Path:
    """The submission folder for a path or a reference submission's name.

    Raises:
      UsageError: neither an existing folder nor a known reference name.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path.resolve()
    candidate = reference_dir() / str(name_or_path)
    if "/" not in str(name_or_path) and candidate.is_dir():
        return candidate
    known = sorted(p.parent.name for p in reference_dir().glob("*/submission.py"))
    raise UsageError(
        f"unknown submission {str(name_or_path)!r}: not a folder and not a reference submission "
        f"(known: {', '.join(known)})"
    )


def load_submission(name_or_path: str | Path) -> Submission:
    """Imports `submission.py`, reads `search_space.json` and detects the contract level.

    Raises:
      UsageError: the folder or one of its files is missing or malformed.
      ContractError: `submission.py` fails to import or implements no contract level.
    """
    folder = resolve_submission(name_or_path)
    source = folder / "submission.py"
    if not source.is_file():
        raise UsageError(f"{folder}: no submission.py in the submission folder")
    space_path = folder / "search_space.json"
    search_space = load_search_space(space_path)
    digest = hashlib.sha256(source.read_bytes() + b"\0" + space_path.read_bytes()).hexdigest()
    module = _import_module(source, f"optbench_submission_{folder.name}_{digest[:12]}")
    return Submission(folder.name, folder, module, _detect_level(module, source), search_space, digest)


def _import_module(source: Path, module_name: str) -> ModuleType:
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    install_algoperf_names()  # cheap and idempotent: the level is known only after the import
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module: any error is a contract error at this boundary
        raise ContractError(f"{source}: failed to import: {type(exc).__name__}: {exc}") from exc
    sys.modules[module_name] = module
    return module


def _detect_level(module: ModuleType, source: Path) -> Level:
    if callable(getattr(module, "optimizer", None)):
        return Level.FACTORY
    if isinstance(getattr(module, "Submission", None), type):
        if not callable(getattr(module.Submission, "update", None)):
            raise ContractError(f"{source}: class Submission has no update(batch, step, ctx) method")
        return Level.FULL_CONTROL
    if callable(getattr(module, "update_params", None)):
        missing = [name for name in ALGOPERF_FUNCTIONS if not callable(getattr(module, name, None))]
        if missing:
            raise ContractError(
                f"{source}: AlgoPerf-style submissions (level 3) define "
                f"{', '.join(ALGOPERF_FUNCTIONS)} (and optionally prepare_for_eval); "
                f"missing: {', '.join(missing)}"
            )
        return Level.ALGOPERF
    raise ContractError(
        f"{source}: defines none of optimizer(params, hp, info) (level 1), class Submission "
        "(level 2), or AlgoPerf's update_params (level 3)"
    )
