"""Finding, loading and classifying a submission folder.

A submission is a folder holding `submission.py`, `search_space.json` and a README (and any helper
modules it imports: `harness.submission_imports`). It is named on the command line either by a
path or by the name of a reference folder under `submissions/`.
Every `submission.py` is imported with `algoperf` / `algorithmic_efficiency` importable (optbench's
stand-in unless AlgoPerf is installed: `harness.algoperf.names`), so AlgoPerf submissions load
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

from harness.algoperf.names import install_algoperf_names
from harness.errors import ContractError, UsageError
from harness.needs_cuda import needs_cuda
from harness.search_space import SearchSpace, load_search_space
from harness.submission_imports import register_folder

__all__ = [
    "ALGOPERF_FUNCTIONS",
    "SEARCH_SPACE_FILES",
    "Level",
    "Submission",
    "load_submission",
    "reference_dir",
    "resolve_submission",
]

# The search space's file: optbench's name, else AlgoPerf's.
SEARCH_SPACE_FILES = ("search_space.json", "tuning_search_space.json")
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
      search_space: its parsed search space (empty for a self-tuning submission).
      source_hash: sha256 of submission.py, the search space and any helper `.py` files in the
        folder (part of every trial id).
      is_self_tuning: it has no search space (AlgoPerf's self-tuning ruleset); it runs only under
        the `self` ruleset, and a level-3 one gets `hyperparameters=None`.
    """

    name: str
    folder: Path
    module: ModuleType
    level: Level
    search_space: SearchSpace
    source_hash: str
    is_self_tuning: bool = False


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


def load_submission(name_or_path: str | Path, *, allow_self_tuning: bool = False) -> Submission:
    """Imports `submission.py`, reads its search space and detects the contract level.

    The search space is `search_space.json`, or AlgoPerf's `tuning_search_space.json` when only
    that one is there. A folder with neither is a self-tuning submission (AlgoPerf's self-tuning
    ruleset: hyperparameters fixed in its code); it loads only with `allow_self_tuning` (the
    `self` ruleset), with an empty search space and `is_self_tuning` set. Helper modules and
    packages in the folder are importable by the submission's code (`harness.submission_imports`).

    Raises:
      UsageError: the folder or one of its files is missing or malformed; no search space
        without `allow_self_tuning`.
      ContractError: `submission.py` fails to import (one line when it needs CUDA this machine
        lacks) or implements no contract level.
    """
    folder = resolve_submission(name_or_path)
    source = folder / "submission.py"
    if not source.is_file():
        raise UsageError(f"{folder}: no submission.py in the submission folder")
    space_path = next((folder / n for n in SEARCH_SPACE_FILES if (folder / n).exists()), None)
    if space_path is not None:
        search_space = load_search_space(space_path)
    elif allow_self_tuning:
        search_space = SearchSpace(dims=(), source=f"{folder} (self-tuning: no search space)")
    else:
        raise UsageError(
            f"{folder}: no search space ({' or '.join(SEARCH_SPACE_FILES)}); a "
            "self-tuning submission, whose hyperparameters are fixed in its code, "
            "runs with --ruleset self"
        )
    digest = _source_hash(folder, source, space_path)
    module_name = f"optbench_submission_{folder.name.replace('.', '_')}_{digest[:12]}"
    module = _import_module(folder, source, module_name)
    level = _detect_level(module, source)
    return Submission(folder.name, folder, module, level, search_space, digest, space_path is None)


def _source_hash(folder: Path, source: Path, space_path: Path | None) -> str:
    """sha256 of submission.py, the search space file, and the folder's other `.py` files.

    The helpers come last, each with its relative path, and only when there are any, so a folder
    of just submission.py and search_space.json hashes as it always has.
    """
    data = source.read_bytes() + b"\0" + (space_path.read_bytes() if space_path else b"")
    helpers = sorted(
        p
        for p in folder.rglob("*.py")
        if p != source
        and not any(part.startswith((".", "__pycache__")) for part in p.relative_to(folder).parts)
    )
    for helper in helpers:
        data += b"\0" + helper.relative_to(folder).as_posix().encode() + b"\0" + helper.read_bytes()
    return hashlib.sha256(data).hexdigest()


def _import_module(folder: Path, source: Path, module_name: str) -> ModuleType:
    """Imports `source` as the package `module_name` whose path is `folder` (its helpers are its
    submodules), or returns it when this process imported it already."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(
        module_name, source, submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__builtins__ = register_folder(module_name, folder).builtins  # type: ignore[attr-defined]
    install_algoperf_names()  # cheap and idempotent: the level is known only after the import
    sys.modules[module_name] = module  # before it runs, as Python does: its helpers import it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module: any error is a contract error at this boundary
        del sys.modules[module_name]
        message = needs_cuda(exc, folder, "cpu")
        if message is not None:
            raise ContractError(message) from exc
        raise ContractError(f"{source}: failed to import: {type(exc).__name__}: {exc}") from exc
    except (SystemExit, KeyboardInterrupt) as exc:  # sys.exit() at import must not end optbench
        del sys.modules[module_name]
        raise ContractError(
            f"{source}: raised {exc!r} at import; a submission module only defines names"
        ) from exc
    return module


def _detect_level(module: ModuleType, source: Path) -> Level:
    if callable(getattr(module, "optimizer", None)):
        return Level.FACTORY
    if isinstance(getattr(module, "Submission", None), type):
        if not callable(getattr(module.Submission, "update", None)):
            raise ContractError(
                f"{source}: class Submission has no update(batch, step, ctx) method"
            )
        return Level.FULL_CONTROL
    if callable(getattr(module, "update_params", None)):
        missing = [name for name in ALGOPERF_FUNCTIONS if not callable(getattr(module, name, None))]
        if missing:
            raise ContractError(
                f"{source}: AlgoPerf-style submissions (level 3) define "
                f"{', '.join(ALGOPERF_FUNCTIONS)} (and optionally prepare_for_eval); "
                f"missing: {', '.join(missing)}"
            )
        if _is_jax_only(module):
            raise ContractError(
                f"{source}: an AlgoPerf JAX submission (it uses jax and not torch); "
                "optbench runs AlgoPerf's PyTorch submissions, on PyTorch models"
            )
        return Level.ALGOPERF
    raise ContractError(
        f"{source}: defines none of optimizer(params, hp, info) (level 1), class Submission "
        "(level 2), or AlgoPerf's update_params (level 3)"
    )


def _is_jax_only(module: ModuleType) -> bool:
    """Whether the module's globals come from jax (or flax) and none from torch."""
    tops = set()
    for value in vars(module).values():
        origin = (
            value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", "")
        )
        if isinstance(origin, str):
            tops.add(origin.partition(".")[0])
    return bool(tops & {"jax", "flax"}) and "torch" not in tops
