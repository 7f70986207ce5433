"""A submission folder's own modules, importable by its code and by nobody else's.

AlgoPerf submissions import helpers that sit beside `submission.py`: `from lawa_utils import X`,
`import mymodule`, a package (`from optimizers.shampoo import Shampoo`), relative imports
(`from .utils import f`), and imports inside functions that run later in the trial. Putting the
folder on `sys.path` would make those names global: a second submission in the same process with
its own `utils.py` would be handed the first one's module from `sys.modules`.

So each submission module (named uniquely per folder and source by `harness.submission`, say `M`)
is loaded as a package whose search path is its folder, and its helpers are its submodules: the
folder's `utils.py` is the module `M.utils`, never `utils`. Every module loaded from the folder
gets its own `__builtins__`, whose `__import__` turns an absolute import of one of the folder's
top-level names (`import utils`, `from utils import f`, `import optimizers.shampoo`) into the
import of `M.<name>`; every other import is Python's own. A function keeps its module's builtins,
so imports it runs later resolve the same way, in whichever process loads the submission (the
trial's process, a Ray worker, a SLURM job, a forkserver child: each calls `load_submission`).

The folder's top-level names are its `*.py` files (other than `submission.py`) and its folders
holding an `__init__.py`, listed once when the submission loads; like the folder of a script run
by Python, they take precedence over installed modules of the same name. One more form resolves
to the folder: an absolute import through the folder's own name, as the submission was imported
from the root of the repository it was developed in (`from submissions.self_tuning.<folder>.muon
import X`), when that import fails as written.

Not covered: `importlib.import_module("utils")`, which does not go through `__import__`.
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["FolderImports", "register_folder"]

_PYTHON_IMPORT = builtins.__import__


class FolderImports:
    """The `__import__` of the modules of one submission folder (see the module docstring).

    Attributes:
      package: the submission module's name; the folder's modules are its submodules.
      folder: the submission folder.
      local_names: the folder's top-level module and package names.
      builtins: the `__builtins__` every module of the folder executes with.
    """

    def __init__(self, package: str, folder: Path) -> None:
        self.package = package
        self.folder = folder
        self.local_names = _top_level_names(folder)
        self.builtins: dict[str, Any] = {**vars(builtins), "__import__": self.import_module}

    def import_module(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        """`builtins.__import__` with the folder's names resolved to the folder's modules."""
        if level == 0 and name.partition(".")[0] in self.local_names:
            return self._import_local(name, fromlist)
        try:
            return _PYTHON_IMPORT(name, globals, locals, fromlist, level)
        except ModuleNotFoundError as exc:
            local = self._repository_path(name, exc) if level == 0 else None
            if local is None or (local == "" and not fromlist):
                raise
            return self._import_local(local, fromlist)

    def _import_local(self, name: str, fromlist: Sequence[str] | None) -> ModuleType:
        """Imports the folder's `name` as `<package>.<name>` (the package itself for "");
        returns what the import statement binds."""
        module = _PYTHON_IMPORT(
            ".".join(filter(None, [self.package, name])), None, None, fromlist, 0
        )
        if fromlist:
            return module  # `from a.b import x`: the module a.b itself
        return sys.modules[f"{self.package}.{name.partition('.')[0]}"]  # `import a.b` binds a

    def _repository_path(self, name: str, error: ModuleNotFoundError) -> str | None:
        """The folder-relative name of `name` when it runs through the folder's own name and
        failed as written (`submissions.x.<folder>.utils` -> `utils`; `from submissions.x.<folder>
        import utils` -> "", the folder itself), else None."""
        missing = error.name or ""
        if not (name == missing or name.startswith(f"{missing}.")):
            return None  # something else is missing, deeper inside the module imported
        parts = name.split(".")
        for i in range(len(parts) - 1, -1, -1):
            if parts[i] != self.folder.name:
                continue
            rest = parts[i + 1 :]
            if not rest or rest[0] in self.local_names:
                return ".".join(rest)
        return None


def _top_level_names(folder: Path) -> frozenset[str]:
    names = set()
    for entry in folder.iterdir():
        if entry.suffix == ".py" and entry.is_file() and entry.stem != "submission":
            names.add(entry.stem)
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            names.add(entry.name)
    return frozenset(name for name in names if name.isidentifier())


class _FolderLoader(importlib.machinery.SourceFileLoader):
    """Python's loader of a source file, executing it with its folder's `__builtins__`."""

    def __init__(self, fullname: str, path: str, folder_builtins: dict[str, Any]) -> None:
        super().__init__(fullname, path)
        self._builtins = folder_builtins

    def exec_module(self, module: ModuleType) -> None:
        module.__builtins__ = self._builtins  # type: ignore[attr-defined]
        super().exec_module(module)


class _FolderFinder(importlib.abc.MetaPathFinder):
    """Finds the submodules of registered submission packages with Python's path finder, and
    hands their source files to `_FolderLoader`."""

    def __init__(self) -> None:
        self.folders: dict[str, FolderImports] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, dot, _ = fullname.partition(".")
        imports = self.folders.get(package)
        if imports is None or not dot:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            assert spec.origin is not None
            spec.loader = _FolderLoader(fullname, spec.origin, imports.builtins)
        return spec


_FINDER = _FolderFinder()


def register_folder(package: str, folder: Path) -> FolderImports:
    """Makes `folder`'s modules the submodules of the package `package` (the submission module,
    whose `__path__` must be `[folder]`); returns the folder's import function, whose `builtins`
    the submission module must execute with. Idempotent per package."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    if package not in _FINDER.folders:
        _FINDER.folders[package] = FolderImports(package, folder)
    return _FINDER.folders[package]
