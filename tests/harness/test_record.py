"""The typed trial record is the store's schema: the columns come from it, in its order."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness.record import EvalRecord, TrialRecord
from harness.results import EVALS_SCHEMA, TRIALS_SCHEMA

STORE = Path(__file__).resolve().parents[2] / "results" / "smoke-suite" / "fixed-model"


def test_the_rows_are_the_schemas_columns_in_order() -> None:
    assert list(TrialRecord(trial_id="t").to_row()) == TRIALS_SCHEMA.names
    assert list(EvalRecord(trial_id="t").to_row()) == EVALS_SCHEMA.names
    assert not TRIALS_SCHEMA.field("trial_id").nullable
    assert all(f.nullable for f in TRIALS_SCHEMA if f.name != "trial_id")


def test_files_written_before_the_record_existed_have_its_schema() -> None:
    # The committed store was written when the schema was a hand-written list of columns.
    trial_file = next((STORE / "trials").glob("*.parquet"))
    eval_file = STORE / "evals" / trial_file.name
    assert pq.read_schema(trial_file).equals(TRIALS_SCHEMA, check_metadata=True)
    assert pq.read_schema(eval_file).equals(EVALS_SCHEMA, check_metadata=True)


def test_a_misspelled_column_is_an_error_not_a_new_key() -> None:
    record = TrialRecord(trial_id="t")
    with pytest.raises(AttributeError):
        record.wall_time = 1.0  # type: ignore[attr-defined]
    record.wall_time_s = 1.0
    assert record.to_row()["wall_time_s"] == 1.0
