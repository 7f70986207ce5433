"""The one exception hierarchy of optbench.

Every error a user can cause is an `OptbenchError`; the CLI prints its message on one line and exits
with status 2. Messages say what went wrong, where (file, key, workload), and what would be valid.
"""

from __future__ import annotations

__all__ = ["ContractError", "OptbenchError", "ResultsSchemaError", "UsageError"]


class OptbenchError(Exception):
    """Base class for every error caused by input: the CLI maps it to exit status 2."""


class UsageError(OptbenchError):
    """Bad command-line input: unknown workload or submission, bad option value, missing file."""


class ContractError(OptbenchError):
    """A submission or workload does not honour its contract
    (missing function, bad point, roles)."""


class ResultsSchemaError(OptbenchError):
    """A results file is unreadable or does not match the declared, versioned schema."""
