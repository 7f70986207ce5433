"""The results store: atomic per-trial parquet files, dedupe, validated and versioned schema."""

from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.errors import ResultsSchemaError
from harness.results import (
    EVALS_SCHEMA,
    PROVENANCE_FIELDS,
    SCHEMA_VERSION,
    TRIALS_SCHEMA,
    ResultsStore,
)


def _provenance() -> dict[str, Any]:
    return {
        "git_commit": "abc123",
        "git_dirty": False,
        "hostname": "node7",
        "command_line": "optbench run digits",
        "created_utc": "2026-01-01T00:00:00Z",
    }


def trial_row(trial_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in TRIALS_SCHEMA.names}
    row.update(_provenance())
    row.update(
        trial_id=trial_id,
        workload="digits",
        workload_version=1,
        scale="smoke",
        submission="adamw",
        hparams_json='{"lr": 0.001}',
        seed=3,
        status="target_reached",
        time_to_target_s=1.25,
        steps_to_target=40,
        final_metric=0.97,
        steps=50,
    )
    row.update(values)
    return row


def eval_row(trial_id: str, eval_index: int, metric: str, value: float) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in EVALS_SCHEMA.names}
    row.update(_provenance())
    row.update(
        trial_id=trial_id,
        eval_index=eval_index,
        step=10 * (eval_index + 1),
        tokens=None,
        train_time_s=0.5 * (eval_index + 1),
        metric=metric,
        value=value,
    )
    return row


def _folder_names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_schemas_carry_version_and_provenance() -> None:
    for schema in (TRIALS_SCHEMA, EVALS_SCHEMA):
        assert schema.metadata[b"optbench_schema_version"] == str(SCHEMA_VERSION).encode()
        for field in PROVENANCE_FIELDS:
            assert schema.field(field.name) == field
        assert not schema.field("trial_id").nullable


def test_empty_store_reads_empty_frames_with_every_column(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "missing")
    assert store.read_trials().empty
    assert list(store.read_trials().columns) == TRIALS_SCHEMA.names
    assert list(store.read_evals().columns) == EVALS_SCHEMA.names
    assert store.completed_trial_ids() == set()


def test_write_then_read_trial_and_evals(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    evals = [
        eval_row("t1", 1, "loss", 0.3),
        eval_row("t1", 0, "loss", 0.9),
        eval_row("t1", 0, "accuracy", 0.5),
    ]
    assert store.write_trial(trial_row("t1"), evals) is True
    assert _folder_names(tmp_path / "trials") == ["t1.parquet"]
    assert _folder_names(tmp_path / "evals") == ["t1.parquet"]  # no temp files left

    trials = store.read_trials()
    assert len(trials) == 1
    row = trials.iloc[0]
    assert row["trial_id"] == "t1"
    assert row["workload"] == "digits"
    assert row["seed"] == 3
    assert row["time_to_target_s"] == 1.25
    assert row["steps_to_target"] == 40
    assert row["final_metric"] == 0.97
    assert row["git_commit"] == "abc123"
    assert bool(row["git_dirty"]) is False
    assert pd.isna(row["error"])
    assert math.isnan(row["best_metric"])

    read = store.read_evals()
    # ordered by trial, eval index, metric
    assert list(zip(read["eval_index"], read["metric"], read["value"], strict=True)) == [
        (0, "accuracy", 0.5),
        (0, "loss", 0.9),
        (1, "loss", 0.3),
    ]
    assert list(read["step"]) == [10, 10, 20]
    assert set(read["trial_id"]) == {"t1"}


def test_files_on_disk_have_exactly_the_declared_schema(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.write_trial(trial_row("t1"), [eval_row("t1", 0, "loss", 1.0)])
    assert pq.read_schema(tmp_path / "trials" / "t1.parquet").equals(
        TRIALS_SCHEMA, check_metadata=True
    )
    assert pq.read_schema(tmp_path / "evals" / "t1.parquet").equals(
        EVALS_SCHEMA, check_metadata=True
    )


def test_second_write_of_same_trial_id_is_skipped(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    assert store.write_trial(trial_row("t1", seed=1), [eval_row("t1", 0, "loss", 1.0)])
    assert store.write_trial(trial_row("t1", seed=2), [eval_row("t1", 0, "loss", 2.0)]) is False
    trials = store.read_trials()
    assert len(trials) == 1
    assert trials["seed"].tolist() == [1]  # the first write is kept, not overwritten
    assert store.read_evals()["value"].tolist() == [1.0]


def test_trial_without_evals(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    assert store.write_trial(trial_row("t1", status="failed", error="Traceback ..."), [])
    assert store.read_trials()["error"].tolist() == ["Traceback ..."]
    assert store.read_evals().empty


def test_completed_trial_ids(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    for trial_id in ("a", "b", "c"):
        store.write_trial(trial_row(trial_id), [])
    (tmp_path / "trials" / ".d.1234.tmp").write_bytes(b"partial")
    assert store.completed_trial_ids() == {"a", "b", "c"}
    assert store.has_trial("b") and not store.has_trial("d")


def test_hidden_temp_and_partial_files_are_ignored(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.write_trial(trial_row("t1"), [eval_row("t1", 0, "loss", 1.0)])
    (tmp_path / "trials" / ".x.tmp").write_bytes(b"half a parquet file")
    (tmp_path / "trials" / ".abc.parquet").write_bytes(b"PAR1 truncated")
    (tmp_path / "evals" / ".abc.parquet").write_bytes(b"PAR1 truncated")
    (tmp_path / "evals" / "_tmp.parquet").write_bytes(b"PAR1 truncated")
    assert store.read_trials()["trial_id"].tolist() == ["t1"]
    assert len(store.read_evals()) == 1
    assert store.completed_trial_ids() == {"t1"}


def _write_raw(path: Path, schema: pa.Schema, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([row], schema=schema), path)


def test_other_schema_version_raises_naming_the_file(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.write_trial(trial_row("t1"), [])
    old = TRIALS_SCHEMA.with_metadata({b"optbench_schema_version": b"0"})
    path = tmp_path / "trials" / "old.parquet"
    _write_raw(path, old, trial_row("old"))
    with pytest.raises(ResultsSchemaError) as info:
        store.read_trials()
    assert str(path) in str(info.value)
    assert "version 0" in str(info.value)


def test_missing_schema_version_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "evals" / "x.parquet"
    _write_raw(path, EVALS_SCHEMA.remove_metadata(), eval_row("x", 0, "loss", 1.0))
    with pytest.raises(ResultsSchemaError, match="version missing") as info:
        ResultsStore(tmp_path).read_evals()
    assert str(path) in str(info.value)


def test_same_version_with_other_columns_raises_naming_the_file(tmp_path: Path) -> None:
    schema = pa.schema(
        [f for f in TRIALS_SCHEMA if f.name != "seed"] + [pa.field("seeed", pa.int64())],
        metadata=TRIALS_SCHEMA.metadata,
    )
    row = trial_row("t1")
    row["seeed"] = row.pop("seed")
    path = tmp_path / "trials" / "t1.parquet"
    _write_raw(path, schema, row)
    with pytest.raises(ResultsSchemaError) as info:
        ResultsStore(tmp_path).read_trials()
    message = str(info.value)
    assert str(path) in message
    assert "['seed']" in message and "['seeed']" in message


def test_same_columns_with_other_type_raises(tmp_path: Path) -> None:
    index = TRIALS_SCHEMA.get_field_index("seed")
    schema = TRIALS_SCHEMA.set(index, pa.field("seed", pa.float64()))
    path = tmp_path / "trials" / "t1.parquet"
    _write_raw(path, schema, trial_row("t1", seed=3.0))
    with pytest.raises(ResultsSchemaError, match="type differs"):
        ResultsStore(tmp_path).read_trials()


def test_garbage_parquet_file_raises_naming_the_file(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.write_trial(trial_row("t1"), [])
    path = tmp_path / "trials" / "garbage.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(ResultsSchemaError) as info:
        store.read_trials()
    assert str(path) in str(info.value)
    assert "not a readable parquet file" in str(info.value)


@pytest.mark.parametrize(
    "column, value",
    [
        ("seed", "three"),
        ("hostname", 5),
        ("git_dirty", "yes"),
        ("final_metric", "high"),
        ("steps", True),
        ("workload_version", [1]),
    ],
)
def test_wrong_typed_trial_value_raises_and_writes_nothing(
    tmp_path: Path, column: str, value: Any
) -> None:
    store = ResultsStore(tmp_path)
    with pytest.raises(ResultsSchemaError, match="trials row"):
        store.write_trial(trial_row("t1", **{column: value}), [eval_row("t1", 0, "loss", 1.0)])
    assert _folder_names(tmp_path / "trials") == []
    assert _folder_names(tmp_path / "evals") == []
    assert store.completed_trial_ids() == set()
    # the trial can then be written correctly
    assert store.write_trial(trial_row("t1"), [eval_row("t1", 0, "loss", 1.0)])


def test_wrong_typed_eval_value_raises_and_writes_nothing(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    bad = eval_row("t1", 1, "loss", 1.0)
    bad["value"] = "nan-ish"
    with pytest.raises(ResultsSchemaError, match="evals row"):
        store.write_trial(trial_row("t1"), [eval_row("t1", 0, "loss", 1.0), bad])
    assert _folder_names(tmp_path / "trials") == []
    assert _folder_names(tmp_path / "evals") == []


def test_row_missing_a_column_raises_naming_it(tmp_path: Path) -> None:
    row = trial_row("t1")
    del row["time_to_target_s"]
    with pytest.raises(ResultsSchemaError, match="time_to_target_s"):
        ResultsStore(tmp_path).write_trial(row, [])
    assert _folder_names(tmp_path / "trials") == []


def test_later_eval_row_missing_a_column_raises(tmp_path: Path) -> None:
    second = eval_row("t1", 1, "loss", 0.5)
    del second["value"]
    with pytest.raises(ResultsSchemaError, match="value"):
        ResultsStore(tmp_path).write_trial(
            trial_row("t1"), [eval_row("t1", 0, "loss", 1.0), second]
        )


def test_fractional_float_in_integer_column_raises(tmp_path: Path) -> None:
    with pytest.raises(ResultsSchemaError):
        ResultsStore(tmp_path).write_trial(trial_row("t1", seed=1.5), [])


def test_null_trial_id_raises_schema_error_and_writes_nothing(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    try:
        store.write_trial(trial_row(None), [])  # type: ignore[arg-type]
    except ResultsSchemaError:
        pass
    except pa.ArrowException as exc:
        pytest.fail(f"raw pyarrow error escaped: {exc!r}")
    else:
        pytest.fail("no error for a null trial_id")
    assert _folder_names(tmp_path / "evals") == []
    assert _folder_names(tmp_path / "trials") == []


# -- concurrent writers --------------------------------------------------------------------------


def _writer(root: str, worker: int) -> None:
    store = ResultsStore(root)
    for i in range(20):
        trial_id = f"w{worker}-t{i}"
        assert store.write_trial(
            trial_row(trial_id, seed=worker * 100 + i), [eval_row(trial_id, 0, "loss", float(i))]
        )


def test_concurrent_writers_from_eight_processes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w)) for w in range(8)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
    assert [p.exitcode for p in workers] == [0] * 8

    store = ResultsStore(tmp_path)
    trials = store.read_trials()
    assert len(trials) == 160
    assert set(trials["trial_id"]) == {f"w{w}-t{i}" for w in range(8) for i in range(20)}
    assert sorted(trials["seed"]) == sorted(w * 100 + i for w in range(8) for i in range(20))
    assert len(store.read_evals()) == 160
    assert len(store.completed_trial_ids()) == 160
    leftovers = [n for n in os.listdir(tmp_path / "trials") if not n.endswith(".parquet")]
    assert leftovers == []


V3_COLUMNS = ("target_seeds", "target_gate_margin", "num_params", "batch_size", "memory_cap_bytes")


@pytest.mark.parametrize(
    ("version", "absent"),
    [
        (b"1", ("attempts", "restarts", *V3_COLUMNS)),
        (b"2", V3_COLUMNS),
    ],
)
def test_older_files_read_with_the_columns_added_since_as_null(
    tmp_path: Path, version: bytes, absent: tuple[str, ...]
) -> None:
    store = ResultsStore(tmp_path)
    store.write_trial(trial_row("new", attempts=2, restarts=1, target_seeds=5, num_params=7), [])
    old_schema = pa.schema(
        [f for f in TRIALS_SCHEMA if f.name not in absent],
        metadata={b"optbench_schema_version": version},
    )
    row = {k: v for k, v in trial_row("old").items() if k in old_schema.names}
    _write_raw(tmp_path / "trials" / "old.parquet", old_schema, row)
    trials = store.read_trials().set_index("trial_id")
    assert trials.loc["new", "attempts"] == 2 and trials.loc["new", "restarts"] == 1
    assert trials.loc["new", "target_seeds"] == 5 and trials.loc["new", "num_params"] == 7
    assert all(pd.isna(trials.loc["old", column]) for column in absent)
    assert trials.loc["old", "status"] == "target_reached"
