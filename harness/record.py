"""A trial's record, typed: the one row it leaves in the store's `trials` table, and its eval rows.

The store's parquet schemas are derived from these classes (`harness.results`), field by field in
their order, so a column is declared once: here. A field is nullable unless its type says
otherwise; `trial_id` never is. Python types map to parquet types as `str` -> string, `int` ->
int64, `float` -> float64, `bool` -> bool. Every row of both tables ends with the `Provenance`
columns, so a row copied anywhere still says where it came from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EvalRecord", "Provenance", "TrialRecord", "columns"]


@dataclass(slots=True)
class Provenance:
    """Where a row came from (`harness.provenance.collect_provenance` fills it)."""

    git_commit: str | None = None
    git_dirty: bool | None = None
    optbench_version: str | None = None
    python_version: str | None = None
    torch_version: str | None = None
    jax_version: str | None = None
    optax_version: str | None = None
    device_name: str | None = None
    cpu_model: str | None = None
    hostname: str | None = None
    slurm_job_id: str | None = None
    command_line: str | None = None
    created_utc: str | None = None


@dataclass(slots=True)
class TrialRecord:
    """One trial: what ran, how it ended, its clock, its memory, how it ran; then its provenance.

    The order is the columns' order in the store (columns added by later schema versions come
    after the first version's, as they were added: `harness.results._ADDED_IN`).
    """

    trial_id: str
    # what ran
    workload: str | None = None
    workload_version: int | None = None
    scale: str | None = None
    submission: str | None = None
    submission_hash: str | None = None
    hparams_json: str | None = None
    seed: int | None = None
    ruleset: str | None = None
    ruleset_json: str | None = None
    study: int | None = None
    trial_index: int | None = None
    hardware_class: str | None = None
    precision: str | None = None
    num_threads: int | None = None
    # how it ended (`harness.trial.TrialStatus`; the traceback of a failure)
    status: str | None = None
    error: str | None = None
    # the target, and the time / steps / tokens to reach it (null: never reached)
    target_metric: str | None = None
    target_value: float | None = None
    target_direction: str | None = None
    time_to_target_s: float | None = None
    steps_to_target: int | None = None
    tokens_to_target: int | None = None
    final_metric: float | None = None
    best_metric: float | None = None
    steps: int | None = None
    tokens: int | None = None
    # the clock (seconds)
    train_time_s: float | None = None
    compile_time_s: float | None = None
    eval_time_s: float | None = None
    wall_time_s: float | None = None
    throughput_per_s: float | None = None
    throughput_unit: str | None = None
    # memory accounting (bytes)
    params_bytes: int | None = None
    grads_bytes: int | None = None
    optimizer_state_bytes: int | None = None
    peak_bytes: int | None = None
    activations_bytes: int | None = None
    peak_source: str | None = None
    # schema v2: launcher runs of this trial (retries), and resumes from a checkpoint
    attempts: int | None = None
    restarts: int | None = None
    # schema v3: the target's seed gate, the model's size and batch (ladder rungs differ), and the
    # memory cap of a fixed-resource trial (a peak above it is status `over_budget`)
    target_seeds: int | None = None
    target_gate_margin: float | None = None
    num_params: int | None = None
    batch_size: int | None = None
    memory_cap_bytes: int | None = None
    provenance: Provenance = field(default_factory=Provenance)

    def to_row(self) -> dict[str, Any]:
        """The record as the store's row: one flat dict, provenance columns last."""
        return _flat(self)


@dataclass(slots=True)
class EvalRecord:
    """One metric at one eval point of a trial; then the trial's provenance."""

    trial_id: str
    eval_index: int | None = None
    step: int | None = None
    tokens: int | None = None
    train_time_s: float | None = None  # the trial's timed training seconds at this point
    metric: str | None = None
    value: float | None = None
    provenance: Provenance = field(default_factory=Provenance)

    def to_row(self) -> dict[str, Any]:
        return _flat(self)


def _flat(record: Any) -> dict[str, Any]:
    row = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    provenance = row.pop("provenance")
    return {**row, **dataclasses.asdict(provenance)}


def columns(record_type: type) -> list[tuple[str, str, bool]]:
    """(name, Python type name, nullable) of each column of `record_type`'s rows, in order."""
    found: list[tuple[str, str, bool]] = []
    for f in dataclasses.fields(record_type):
        if f.name == "provenance":
            found += columns(Provenance)
            continue
        kind = str(f.type)  # a string: this module's annotations are postponed
        nullable = kind.endswith(" | None")
        found.append((f.name, kind.removesuffix(" | None"), nullable))
    return found
