"""The results store: `trials` and `evals` parquet datasets under one root, with a versioned schema.

Layout::

    ROOT/trials/<trial_id>.parquet   one row per finished trial
    ROOT/evals/<trial_id>.parquet    one row per (eval point, metric) of that trial

Each file is written to a hidden temporary name and renamed into place (atomic on POSIX), evals
first, so a trial file's existence means the trial is complete. The store is append-only; a trial id
already present is never written again. Readers validate every file's schema and version and skip
hidden and temporary files. Only pyarrow and pandas are imported here, so reports stay torch-free.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from harness.errors import ResultsSchemaError
from harness.record import EvalRecord, Provenance, TrialRecord, columns

__all__ = [
    "EVALS_SCHEMA",
    "PROVENANCE_FIELDS",
    "ResultsStore",
    "SCHEMA_VERSION",
    "TRIALS_SCHEMA",
]

SCHEMA_VERSION = 3
_VERSION_KEY = b"optbench_schema_version"

_PA_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def _fields(record_type: type) -> list[pa.Field]:
    """The parquet columns of a record type (`harness.record`), in its fields' order."""
    return [
        pa.field(name, _PA_TYPES[kind], nullable=nullable)
        for name, kind, nullable in columns(record_type)
    ]


PROVENANCE_FIELDS: list[pa.Field] = _fields(Provenance)

# Columns each schema version added: older files are read with them null.
_ADDED_IN = {
    2: {"attempts", "restarts"},
    3: {"target_seeds", "target_gate_margin", "num_params", "batch_size", "memory_cap_bytes"},
}

_METADATA = {_VERSION_KEY: str(SCHEMA_VERSION).encode()}
TRIALS_SCHEMA = pa.schema(_fields(TrialRecord), metadata=_METADATA)
EVALS_SCHEMA = pa.schema(_fields(EvalRecord), metadata=_METADATA)
_TABLES = {"trials": TRIALS_SCHEMA, "evals": EVALS_SCHEMA}


class ResultsStore:
    """Reads and writes one results root.

    Args:
      root: the results directory; created on first write.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- writing -------------------------------------------------------------------------------

    def write_trial(
        self, trial_row: Mapping[str, Any], eval_rows: Sequence[Mapping[str, Any]] | pa.Table
    ) -> bool:
        """Writes one trial and its evals atomically; returns False if the trial id exists already.

        `eval_rows` may be a table of `EVALS_SCHEMA` already (a bulk import builds its columns
        directly instead of one dict per row).

        Raises:
          ResultsSchemaError: a row misses a column or has a value of the wrong type.
        """
        return self.write_trials([(trial_row, eval_rows)]) == 1

    def write_trials(
        self, trials: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]] | pa.Table]]
    ) -> int:
        """Writes many trials (as `write_trial` does one); returns how many were new.

        Every row is checked and every file written under a temporary name before the first is
        renamed into place, so a bad row or a failed write leaves the store as it was. Files are
        made durable first: each by fsync for one trial, by one sync of the filesystem for more.

        Raises:
          ResultsSchemaError: a row misses a column or has a value of the wrong type.
        """
        tables, seen = [], set()
        for trial_row, eval_rows in trials:
            if trial_row["trial_id"] in seen or self.has_trial(trial_row["trial_id"]):
                continue
            seen.add(trial_row["trial_id"])
            trial = _to_table([trial_row], TRIALS_SCHEMA, "trials")
            if isinstance(eval_rows, pa.Table):
                evals = _checked_table(eval_rows, EVALS_SCHEMA, "evals")
            else:
                evals = _to_table(list(eval_rows), EVALS_SCHEMA, "evals")
            tables.append((trial_row["trial_id"], evals, trial))
        staged: list[tuple[Path, Path]] = []
        try:
            for trial_id, evals, trial in tables:  # evals first: a trial file marks it complete
                staged.append(self._stage(evals, "evals", trial_id, fsync=len(tables) == 1))
                staged.append(self._stage(trial, "trials", trial_id, fsync=len(tables) == 1))
            if len(tables) > 1:
                os.sync()
            for tmp, final in staged:
                os.replace(tmp, final)
        finally:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
        return len(tables)

    @property
    def live_root(self) -> Path:
        """Where running trials keep their checkpoints and progress (`harness.live`)."""
        return self.root / "_live"

    def remove_live(self, trial_id: str) -> None:
        """Removes a stored trial's live folder (its checkpoint is no longer needed)."""
        shutil.rmtree(self.live_root / trial_id, ignore_errors=True)

    def read_trial(self, trial_id: str) -> dict[str, Any] | None:
        """The stored row of one trial (None when it is not stored)."""
        path = self.root / "trials" / f"{trial_id}.parquet"
        if not path.exists():
            return None
        _validate_file(path, TRIALS_SCHEMA)
        return dict(pq.read_table(path).to_pylist()[0])

    def has_trial(self, trial_id: str) -> bool:
        return (self.root / "trials" / f"{trial_id}.parquet").exists()

    def _stage(self, table: pa.Table, name: str, trial_id: str, fsync: bool) -> tuple[Path, Path]:
        """Writes `table` to a hidden temporary file beside its final name; returns both paths."""
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{trial_id}.{uuid.uuid4().hex}.tmp"
        try:
            pq.write_table(table, tmp)
            if fsync:
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, folder / f"{trial_id}.parquet"

    # -- reading -------------------------------------------------------------------------------

    def files(self, name: str) -> list[Path]:
        """The complete files of table `name`, skipping hidden and temporary ones."""
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))

    def completed_trial_ids(self) -> set[str]:
        """Ids of the trials that finished (one file name per trial: no parquet read needed)."""
        return {p.stem for p in self.files("trials")}

    def read_trials(self) -> pd.DataFrame:
        """All trial rows, validated, one per trial id."""
        return self._read("trials").drop_duplicates("trial_id", keep="first").reset_index(drop=True)

    def read_evals(self) -> pd.DataFrame:
        """All eval rows, validated, ordered by trial, eval index and metric."""
        frame = self._read("evals")
        frame = frame.drop_duplicates(["trial_id", "eval_index", "metric"], keep="first")
        return frame.sort_values(["trial_id", "eval_index", "metric"]).reset_index(drop=True)

    def _read(self, name: str) -> pd.DataFrame:
        schema = _TABLES[name]
        files = self.files(name)
        for path in files:
            _validate_file(path, schema)
        if not files:
            return schema.empty_table().to_pandas()
        table = ds.dataset([str(p) for p in files], schema=schema, format="parquet").to_table()
        return table.to_pandas()


def _validate_file(path: Path, schema: pa.Schema) -> None:
    try:
        found = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise ResultsSchemaError(f"{path}: not a readable parquet file ({exc})") from None
    version = (found.metadata or {}).get(_VERSION_KEY)
    older = {str(v).encode(): v for v in range(1, SCHEMA_VERSION)}
    if version in older:  # an older file lacks the columns added since: those read as null
        added = set().union(*(_ADDED_IN[v] for v in range(older[version] + 1, SCHEMA_VERSION + 1)))
        schema = pa.schema([f for f in schema if f.name not in added])
    elif version != str(SCHEMA_VERSION).encode():
        shown = version.decode() if version else "missing"
        raise ResultsSchemaError(
            f"{path}: results schema version {shown}, this optbench reads version {SCHEMA_VERSION}"
        )
    if not found.remove_metadata().equals(schema.remove_metadata()):
        missing = sorted(set(schema.names) - set(found.names))
        extra = sorted(set(found.names) - set(schema.names))
        raise ResultsSchemaError(
            f"{path}: columns do not match schema v{SCHEMA_VERSION} "
            f"(missing {missing or 'none'}, unexpected {extra or 'none'}, or a type differs)"
        )


def _to_table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema, name: str) -> pa.Table:
    for index, row in enumerate(rows):
        missing = [f.name for f in schema if f.name not in row]
        if missing:
            raise ResultsSchemaError(f"{name} row {index} lacks columns {missing}")
        for column in schema:
            problem = _type_problem(column, row[column.name])
            if problem:
                raise ResultsSchemaError(
                    f"{name} row {index}: column {column.name!r} {problem} "
                    f"(schema v{SCHEMA_VERSION})"
                )
    try:
        return pa.Table.from_pylist([dict(row) for row in rows], schema=schema)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ResultsSchemaError(
            f"{name} row does not fit schema v{SCHEMA_VERSION}: {exc}"
        ) from None


def _checked_table(table: pa.Table, schema: pa.Schema, name: str) -> pa.Table:
    """`table` if its columns are exactly `schema`'s (a non-nullable one holding no null)."""
    if not table.schema.remove_metadata().equals(schema.remove_metadata()):
        raise ResultsSchemaError(f"{name} table does not match schema v{SCHEMA_VERSION}")
    for field in schema:
        if not field.nullable and table.column(field.name).null_count:
            raise ResultsSchemaError(f"{name} table: column {field.name!r} may not be null")
    return table.replace_schema_metadata(schema.metadata)


def _type_problem(column: pa.Field, value: Any) -> str | None:
    """Why `value` cannot be stored losslessly in `column`, or None if it can."""
    if value is None:
        return None if column.nullable else "may not be null"
    kind = column.type
    if pa.types.is_integer(kind):
        is_whole_float = isinstance(value, float) and value.is_integer()
        if isinstance(value, bool) or not (isinstance(value, int) or is_whole_float):
            return f"needs an integer, got {value!r}"
    elif pa.types.is_floating(kind):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"needs a number, got {value!r}"
    elif pa.types.is_boolean(kind):
        if not isinstance(value, bool):
            return f"needs true or false, got {value!r}"
    elif pa.types.is_string(kind) and not isinstance(value, str):
        return f"needs a string, got {type(value).__name__}"
    return None
