"""Makes `algoperf` and `algorithmic_efficiency` importable without installing AlgoPerf.

`install_algoperf_names()` appends a finder to the end of `sys.meta_path`. The regular finders run
first, so an installed AlgoPerf always wins; only a name nothing else can find is answered here:
`algoperf` and `algorithmic_efficiency` become empty packages whose submodules (`spec`,
`pytorch_utils`, `param_utils`, `random_utils`) are the modules of `harness.algoperf.shim`, the same
objects under both names, so enums compare equal whichever name a submission used.

Why a real installation wins: taking over another package's import name would break code in the
same process that needs the real one (AlgoPerf's workloads or scoring), and a submission developed
against the real package keeps the exact types it was written for. The adapter reads enums by
member name, so it serves either. Installing is idempotent, imports nothing, and never torch.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

from harness.algoperf import shim as algoperf_shim

__all__ = ["PACKAGE_NAMES", "install_algoperf_names"]

PACKAGE_NAMES = ("algoperf", "algorithmic_efficiency")  # AlgoPerf >= 0.5, and before
_SHIM = algoperf_shim.__name__


class _PackageLoader(importlib.abc.Loader):
    """Creates the top-level package: empty, with no search path of its own (`__path__ = []`),
    so its submodules are found by `_AliasFinder` and never re-executed from the shim's files."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        module.__doc__ = (
            f"AlgoPerf's API as provided by optbench ({_SHIM}); AlgoPerf is not installed."
        )
        module.__version__ = algoperf_shim.__version__  # type: ignore[attr-defined]


class _AliasLoader(importlib.abc.Loader):
    """Returns an already-imported shim module under the alias being imported."""

    def __init__(self, target: str) -> None:
        self._target = target
        self._own_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self._target)
        self._own_spec = module.__spec__  # the import system overwrites it with the alias's spec
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._own_spec  # it ran once, under its own name: only undo the rename


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds `algoperf[.x]` and `algorithmic_efficiency[.x]` when no other finder has."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        top, _, rest = fullname.partition(".")
        if top not in PACKAGE_NAMES:
            return None
        if not rest:
            return importlib.machinery.ModuleSpec(fullname, _PackageLoader(), is_package=True)
        target_name = f"{_SHIM}.{rest}"
        if "." in rest or importlib.util.find_spec(target_name) is None:
            return None  # e.g. `algoperf.workloads`: not provided, a plain ModuleNotFoundError
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(target_name))


def install_algoperf_names() -> None:
    """Lets `import algoperf...` / `import algorithmic_efficiency...` resolve to the shim when
    AlgoPerf is not installed (see the module docstring). Idempotent."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
