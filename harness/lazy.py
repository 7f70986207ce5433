"""A package's names loaded on first use (PEP 562 module `__getattr__`).

Importing one module of a package then costs that module only: the torch-free reports import
`harness.results` without torch, and the command line registers `workloads.commands` without
building any workload.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """The `__getattr__` of `package`: each name of `homes` from its module (`homes[name]`,
    relative to the package), imported on first use."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)

    return __getattr__
