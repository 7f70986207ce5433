"""Imports AlgoPerf's own training logs into the results store, so published scores can be checked.

Input layout (as in mlcommons/submissions_algorithms, `previous_leaderboards/algoperf_v0X/logs/`)::

    LOGS/[external_tuning/ | self_tuning/]<submission>/study_<k>/<workload>_<framework>/
        trial_<i>/eval_measurements.csv

with `<framework>` one of `jax`, `pytorch`. Every `eval_measurements.csv` under LOGS is found; one
elsewhere (AlgoPerf's logs hold a few) is reported, with the count and the first path, and left
out. Each CSV becomes one `trials` row and, in long format, one `evals` row per (eval row,
`train/`, `validation/` or `test/` column). A trial's time is AlgoPerf's `score` column (accumulated
submission time, seconds); its time to target is the `score` of the first eval row whose
`validation/<target_metric_name>` meets `validation_target_value`:

    met(v) = v <= target   (loss, error, wer, ppl: lower is better)
    met(v) = v >= target   (accuracy, ssim, mean_average_precision, bleu)
    time_to_target_s = score[min{j : met(validation_metric[j])}]   (no such j: None)

Rulesets: a trial is recorded under ruleset `self` when a `self_tuning` folder holds it (in LOGS'
own path or below it) or when `ruleset="self"` is asked for, else under `external`.

Variants (`fastmri_tanh_jax`) are scored against their own target and recorded under their base
workload's name (`workload = "fastmri"`) with the variant named in `ruleset_json`. A variant is held
out only when the round's held-out list names it (`{"variant": "fastmri_tanh", "held_out": true}`):
that list is the targets file's `held_out_workloads`, or AlgoPerf's held-out JSON file when one is
given. Any other variant is stored with `"held_out": false` and never scored: scoring leaves every
variant row out of the workloads W, and uses held-out ones only for the held-out rule
(`reports.held_out`). Targets and held-out files are read by `reports.algoperf_targets`.

Every CSV is read and checked before the first trial is written, so bad input writes nothing.
Trial ids hash (benchmark version, ruleset folder, submission, study, workload folder, trial
folder), so importing twice writes nothing new. Only pandas, pyarrow and the results store are
imported.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from harness.errors import ResultsSchemaError, UsageError
from harness.results import EVALS_SCHEMA, PROVENANCE_FIELDS, TRIALS_SCHEMA, ResultsStore
from reports.algoperf_targets import (
    AlgoPerfTargets,
    base_workload,
    find_targets_file,
    is_minimized,
    load_held_out,
    load_targets,
)

__all__ = [
    "ALGOPERF_LAYOUT",
    "ImportSummary",
    "algoperf_hardware_class",
    "import_algoperf",
]

ALGOPERF_LAYOUT = (
    "[external_tuning/|self_tuning/]<submission>/study_<k>/<workload>_<jax|pytorch>/trial_<i>/"
    "eval_measurements.csv"
)
_CSV_NAME = "eval_measurements.csv"
_RULESET_FOLDERS = {"external_tuning": "external", "self_tuning": "self"}
_LAYOUT = re.compile(
    r"^(?:(?P<folder>external_tuning|self_tuning)/)?(?P<submission>[^/]+)/study_(?P<study>\d+)/"
    r"(?P<workload>[^/]+)_(?P<framework>jax|pytorch)/trial_(?P<trial>\d+)/" + _CSV_NAME + "$"
)
_CURVE_PREFIXES = ("train/", "validation/", "test/")


def algoperf_hardware_class(benchmark_version: str) -> str:
    """The hardware class of imported rows: AlgoPerf's benchmarking hardware, 8x V100 (16 GB).

    Imported wall-clock times compare only with rows of the same class, so rounds stay apart.
    """
    return f"algoperf-v{benchmark_version}-8xV100"


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What one import found and did.

    Attributes:
      targets_path: the targets file used.
      benchmark_version: its `benchmark_version`.
      held_out: the variants treated as held out.
      held_out_source: where that list came from (for the command's report).
      written: trials written now.
      already_stored: trials found in the store already (not written again).
      rulesets: trials found per ruleset (`external`, `self`).
      unscored_variants: variants found that the held-out list does not name (stored, not scored).
      outside_layout: eval CSVs under the logs folder that are not in AlgoPerf's layout (left out).
    """

    targets_path: Path
    benchmark_version: str
    held_out: tuple[str, ...]
    held_out_source: str
    written: int
    already_stored: int
    rulesets: dict[str, int]
    unscored_variants: tuple[str, ...]
    outside_layout: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class _TrialKey:
    """Where one CSV sits and what it is: the parsed layout, the ruleset and the derived id."""

    path: Path
    ruleset: str
    submission: str
    study: int
    workload: str
    base: str
    framework: str
    trial_index: int
    trial_id: str


def import_algoperf(
    log_dir: Path,
    store: ResultsStore,
    targets_path: Path | None = None,
    *,
    held_out_path: Path | None = None,
    ruleset: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Imports every trial under `log_dir` into `store`; every CSV is checked before any write.

    Args:
      log_dir: the folder holding the submissions (or the `external_tuning` / `self_tuning`
        folders above them).
      store: the results store to append to.
      targets_path: AlgoPerf targets JSON; None: found as `reports.algoperf_targets` describes.
      held_out_path: AlgoPerf's held-out workloads JSON (a list of names); None: the targets
        file's `held_out_workloads` (none held out when it has no such entry).
      ruleset: `external` or `self` for trials no ruleset folder names; None: by LOGS' path.
      on_progress: called with (CSVs read, CSVs to read) as the import goes.

    Returns:
      An `ImportSummary`.

    Raises:
      UsageError: `log_dir` holds no logs in AlgoPerf's layout, a workload has no target, the
        ruleset contradicts a folder, or the targets or held-out file cannot be found or read.
      ResultsSchemaError: an eval CSV is unreadable, lacks `score`, `global_step` or the target
        column, or holds a non-numeric step or time.
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise UsageError(f"AlgoPerf log folder {log_dir} does not exist")
    if ruleset not in (None, "external", "self"):
        raise UsageError(f"--ruleset {ruleset!r}: AlgoPerf's rulesets are external and self")
    targets = load_targets(targets_path if targets_path else find_targets_file(log_dir))
    held_out, held_out_source = _held_out_list(targets, held_out_path)
    keys, outside = _scan(log_dir, targets, _default_ruleset(log_dir, ruleset), ruleset)
    todo = [key for key in keys if not store.has_trial(key.trial_id)]
    provenance = _provenance(f"import-algoperf {log_dir}")
    version = targets.benchmark_version
    parsed = []
    for done, key in enumerate(todo, start=1):  # everything is read and checked first ...
        parsed.append(_rows(key, targets, held_out, version, provenance))
        if on_progress is not None:
            on_progress(done, len(todo))
    written = store.write_trials(parsed)  # ... then written, all renamed into place at the end
    variants = {key.workload for key in keys if key.workload != key.base}
    return ImportSummary(
        targets_path=targets.path,
        benchmark_version=version,
        held_out=held_out,
        held_out_source=held_out_source,
        written=written,
        already_stored=len(keys) - len(todo),
        rulesets={name: sum(k.ruleset == name for k in keys) for name in ("external", "self")},
        unscored_variants=tuple(sorted(variants - set(held_out))),
        outside_layout=tuple(outside),
    )


def _held_out_list(
    targets: AlgoPerfTargets, held_out_path: Path | None
) -> tuple[tuple[str, ...], str]:
    """The round's held-out variants and where the list came from."""
    if held_out_path is not None:
        return load_held_out(held_out_path, targets), f"--held-out {held_out_path}"
    if targets.held_out_workloads is not None:
        return targets.held_out_workloads, f"held_out_workloads of {targets.path}"
    return (), f"none ({targets.path} lists no held_out_workloads)"


def _default_ruleset(log_dir: Path, ruleset: str | None) -> str:
    """The ruleset of trials below `log_dir` that no ruleset folder of their own names."""
    named = [_RULESET_FOLDERS[p] for p in log_dir.resolve().parts if p in _RULESET_FOLDERS]
    if ruleset is not None and named and named[-1] != ruleset:
        raise UsageError(f"--ruleset {ruleset}: {log_dir} lies in a {named[-1]}-tuning folder")
    return ruleset or (named[-1] if named else "external")


def _scan(
    log_dir: Path, targets: AlgoPerfTargets, default_ruleset: str, asked: str | None
) -> tuple[list[_TrialKey], list[Path]]:
    """Every eval CSV under `log_dir`: the keys of those in the layout,
    and the paths of the rest."""
    keys, outside = [], []
    for path in sorted(log_dir.rglob(_CSV_NAME)):
        match = _LAYOUT.match(path.relative_to(log_dir).as_posix())
        if match is None:
            outside.append(path)
            continue
        folder_ruleset = _RULESET_FOLDERS.get(match["folder"] or "")
        if asked is not None and folder_ruleset not in (None, asked):
            raise UsageError(f"--ruleset {asked}: {path} lies in a {folder_ruleset}-tuning folder")
        keys.append(_trial_key(path, match, folder_ruleset or default_ruleset, targets))
    if not keys:
        found = (
            f"; {len(outside)} {_CSV_NAME} found elsewhere, e.g. {outside[0]}" if outside else ""
        )
        raise UsageError(f"no AlgoPerf logs under {log_dir}: expected {ALGOPERF_LAYOUT}{found}")
    return keys, outside


def _trial_key(
    path: Path, match: re.Match[str], ruleset: str, targets: AlgoPerfTargets
) -> _TrialKey:
    """The key of one CSV in the layout; its workload must have a target."""
    workload = match["workload"]
    if workload not in targets.workloads:
        raise UsageError(
            f"{path}: workload {workload!r} has no target in {targets.path}; pass --targets FILE "
            "with the targets of the round these logs are from"
        )
    parts = ("algoperf", targets.benchmark_version, ruleset, *path.parts[-5:-1])
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return _TrialKey(
        path=path,
        ruleset=ruleset,
        submission=match["submission"],
        study=int(match["study"]),
        workload=workload,
        base=base_workload(workload, targets),
        framework=match["framework"],
        trial_index=int(match["trial"]),
        trial_id=digest[:16],
    )


def _rows(
    key: _TrialKey,
    targets: AlgoPerfTargets,
    held_out: tuple[str, ...],
    version: str,
    provenance: dict[str, Any],
) -> tuple[dict[str, Any], pa.Table]:
    """The trial row and the eval table of one CSV."""
    target = targets.workloads[key.workload]
    metric = f"validation/{target.metric_name}"
    frame = _read_csv(key.path, metric)
    minimize = is_minimized(metric)
    values = frame[metric]
    met = values <= target.value if minimize else values >= target.value
    hit = int(met.to_numpy().argmax()) if bool(met.any()) else None
    finite = values[np.isfinite(values.to_numpy())]
    best = (finite.min() if minimize else finite.max()) if len(finite) else None
    origin: dict[str, Any] = {"source": "algoperf", "version": version, "framework": key.framework}
    if key.base != key.workload:
        origin.update(variant=key.workload, held_out=key.workload in held_out)
    last = frame.iloc[-1]
    trial: dict[str, Any] = dict.fromkeys(TRIALS_SCHEMA.names)
    trial.update(provenance)
    trial.update(
        trial_id=key.trial_id,
        workload=key.base,
        scale="full",
        submission=key.submission,
        hparams_json=_hparams_json(key.path.parent),
        ruleset=key.ruleset,
        ruleset_json=json.dumps(origin, sort_keys=True),
        study=key.study,
        trial_index=key.trial_index,
        hardware_class=algoperf_hardware_class(version),
        status="target_reached" if hit is not None else "budget_exhausted",
        target_metric=metric,
        target_value=target.value,
        target_direction="min" if minimize else "max",
        time_to_target_s=None if hit is None else float(frame["score"].iloc[hit]),
        steps_to_target=None if hit is None else int(frame["global_step"].iloc[hit]),
        final_metric=_float_or_none(values.iloc[-1]),
        best_metric=_float_or_none(best),
        steps=int(last["global_step"]),
        train_time_s=float(last["score"]),
        eval_time_s=_float_or_none(last.get("accumulated_eval_time")),
        wall_time_s=_float_or_none(last.get("total_duration")),
    )
    return trial, _eval_table(frame, key.trial_id, provenance)


def _read_csv(path: Path, metric: str) -> pd.DataFrame:
    """The CSV's eval rows with `score`, `global_step` and the curve columns as numbers.

    Raises:
      ResultsSchemaError: unreadable, a required column missing, no eval row, or a value in
        `score`, `global_step` or `metric` that is not a number (a step that is not whole).
    """
    required = ["score", "global_step", metric]
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # pandas' errors are ValueErrors
        raise ResultsSchemaError(f"{path}: unreadable AlgoPerf eval CSV ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ResultsSchemaError(
            f"{path}: AlgoPerf eval CSV lacks column(s) {missing} "
            f"(needs {required}; has {list(frame.columns)})"
        )
    for column in [c for c in frame.columns if str(c).startswith(_CURVE_PREFIXES)] + required:
        numbers = pd.to_numeric(frame[column], errors="coerce").astype(float)
        if column in required:
            _check_numeric(path, column, frame[column], numbers)
        frame[column] = numbers
    frame = frame.dropna(subset=["score", "global_step"])
    if frame.empty:
        raise ResultsSchemaError(f"{path}: AlgoPerf eval CSV has no row with score, global_step")
    steps = frame["global_step"].to_numpy()
    if not np.all(np.isfinite(steps) & (steps == np.round(steps))):
        row = int(np.flatnonzero(~(np.isfinite(steps) & (steps == np.round(steps))))[0])
        raise ResultsSchemaError(f"{path}: global_step {steps[row]!r} is not a whole step count")
    return frame.reset_index(drop=True)


def _check_numeric(path: Path, column: str, raw: pd.Series, numbers: pd.Series) -> None:
    """Refuses a value that was written but is not a number (empty cells stay missing)."""
    if pd.api.types.is_numeric_dtype(raw):  # pandas parsed the whole column as numbers
        return
    bad = raw.notna() & numbers.isna() & ~raw.astype("string").str.lower().isin(["nan", ""])
    if bool(bad.any()):
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ResultsSchemaError(
            f"{path}: column {column!r} holds {raw.iloc[row]!r} in data row {row + 1}, not a number"
        )


def _eval_table(frame: pd.DataFrame, trial_id: str, provenance: dict[str, Any]) -> pa.Table:
    """One row per (eval row, curve column), in eval then column order, as a table of the schema."""
    curves = [c for c in frame.columns if str(c).startswith(_CURVE_PREFIXES)]
    n_evals, n_curves = len(frame), len(curves)
    n_rows = n_evals * n_curves
    values = frame[curves].to_numpy(dtype=float).ravel()  # row-major: eval, then curve
    columns: dict[str, Any] = {
        "trial_id": pa.array([trial_id] * n_rows, pa.string()),
        "eval_index": pa.array(np.repeat(np.arange(n_evals), n_curves), pa.int64()),
        "step": pa.array(np.repeat(frame["global_step"].to_numpy(np.int64), n_curves), pa.int64()),
        "tokens": pa.nulls(n_rows, pa.int64()),
        "train_time_s": pa.array(np.repeat(frame["score"].to_numpy(float), n_curves), pa.float64()),
        "metric": pa.array([str(c) for c in curves] * n_evals, pa.string()),
        "value": pa.array(values, pa.float64(), mask=np.isnan(values)),
    }
    for field in PROVENANCE_FIELDS:
        columns[field.name] = pa.array([provenance[field.name]] * n_rows, field.type)
    return pa.Table.from_pydict(columns, schema=EVALS_SCHEMA)


def _hparams_json(trial_dir: Path) -> str | None:
    """The trial's hyperparameters as canonical JSON, when AlgoPerf kept them (`hparams.json`;
    older logs: `hparameters.json`)."""
    for name in ("hparams.json", "hparameters.json"):
        path = trial_dir / name
        if path.is_file():
            try:
                return json.dumps(json.loads(path.read_text()), sort_keys=True)
            except (OSError, ValueError) as exc:
                raise ResultsSchemaError(f"{path}: unreadable hyperparameters ({exc})") from None
    return None


def _float_or_none(value: Any) -> float | None:
    """`value` as a float; None for missing or NaN (so the store holds nulls, not NaNs)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _provenance(command_line: str) -> dict[str, Any]:
    """Provenance of imported rows: AlgoPerf's CSVs record none, so only the import is described."""
    row: dict[str, Any] = {f.name: False if f.type == pa.bool_() else "" for f in PROVENANCE_FIELDS}
    row.update(
        command_line=command_line,
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return row
