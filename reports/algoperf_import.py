"""Imports AlgoPerf's own training logs into the results store, so published scores can be checked.

Input layout (as in mlcommons/submissions_algorithms)::

    LOG_DIR/<submission>/study_<k>/<workload>_<framework>/trial_<i>/eval_measurements.csv

with `<framework>` one of `jax`, `pytorch`. Each CSV becomes one `trials` row and, in long format,
one `evals` row per (eval row, `train/`, `validation/` or `test/` column). A trial's time is
AlgoPerf's `score` column (accumulated submission time, seconds); its time to target is the `score`
of the first eval row whose `validation/<target_metric_name>` meets `validation_target_value`:

    met(v) = v <= target   (loss, error, wer, ppl: lower is better)
    met(v) = v >= target   (accuracy, ssim, mean_average_precision, bleu)
    time_to_target_s = score[min{j : met(validation_metric[j])}]   (no such j: None)

A held-out variant's folder (`fastmri_tanh_jax`) is scored against the variant's own target but
recorded under its base workload's name (`workload = "fastmri"`), with the variant named in
`ruleset_json` (`{"variant": "fastmri_tanh", "held_out": true, ...}`): scoring leaves such rows out
of the workloads W and uses them only for the held-out rule (`reports.held_out`).

Trial ids hash (submission, study, workload folder, trial folder), so importing twice writes nothing
new (and a variant's ids differ from its base's). Only pandas and the results store are imported.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from harness.errors import ResultsSchemaError, UsageError
from harness.results import PROVENANCE_FIELDS, TRIALS_SCHEMA, ResultsStore

__all__ = [
    "ALGOPERF_HARDWARE_CLASS",
    "AlgoPerfTarget",
    "AlgoPerfTargets",
    "base_workload",
    "find_targets_file",
    "import_algoperf",
    "is_minimized",
    "load_targets",
]

# The hardware class recorded for imported AlgoPerf rows (assumed: 8x V100; not verified).
# Imported wall-clock times compare only with other rows of this class.
ALGOPERF_HARDWARE_CLASS = "algoperf-v0.6-8xV100"

_CSV_NAME = "eval_measurements.csv"
_LAYOUT = re.compile(
    r"^(?P<submission>[^/]+)/study_(?P<study>\d+)/"
    r"(?P<workload>[^/]+)_(?P<framework>jax|pytorch)/trial_(?P<trial>\d+)$"
)
_CURVE_PREFIXES = ("train/", "validation/", "test/")
_LOWER_IS_BETTER = ("loss", "wer", "ppl")
_HIGHER_IS_BETTER = ("accuracy", "ssim", "mean_average_precision", "bleu")


@dataclass(frozen=True, slots=True)
class AlgoPerfTarget:
    """One workload's entry of an AlgoPerf targets file.

    Attributes:
      metric_name: the validation metric without prefix (`accuracy`, `wer`, ...).
      value: `validation_target_value`.
      step_hint: AlgoPerf's step budget hint (None when absent).
    """

    metric_name: str
    value: float
    step_hint: int | None


@dataclass(frozen=True, slots=True)
class AlgoPerfTargets:
    """An AlgoPerf targets file (`workload_targets_v*.json`).

    Attributes:
      path: where it was read from (for messages).
      benchmark_version: its `benchmark_version` (`0.6`).
      base_workloads: its `base_workloads` list, in file order.
      workloads: target per workload name, variants included.
    """

    path: Path
    benchmark_version: str
    base_workloads: tuple[str, ...]
    workloads: dict[str, AlgoPerfTarget]


def is_minimized(metric_name: str) -> bool:
    """Whether a metric improves downwards, by AlgoPerf's naming (prefixes like `validation/` ok).

    Raises:
      UsageError: the name is neither a known lower- nor higher-is-better metric.
    """
    name = metric_name.split("/")[-1]
    if name in _LOWER_IS_BETTER or "error" in name or name.endswith("_loss"):
        return True
    if name in _HIGHER_IS_BETTER:
        return False
    raise UsageError(
        f"metric {metric_name!r}: unknown direction; lower is better for {_LOWER_IS_BETTER} and "
        f"names containing 'error', higher for {_HIGHER_IS_BETTER}"
    )


def load_targets(path: Path) -> AlgoPerfTargets:
    """Reads an AlgoPerf targets JSON file.

    Raises:
      UsageError: the file is missing, not JSON, or lacks `base_workloads` / `workloads` entries.
    """
    try:
        raw = json.loads(Path(path).read_text())
        workloads = {
            name: AlgoPerfTarget(
                metric_name=str(entry["target_metric_name"]),
                value=float(entry["validation_target_value"]),
                step_hint=int(entry["step_hint"]) if "step_hint" in entry else None,
            )
            for name, entry in raw["workloads"].items()
        }
        base = tuple(str(w) for w in raw["base_workloads"])
    except OSError as exc:
        raise UsageError(f"targets file {path}: cannot read it ({exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"targets file {path}: not an AlgoPerf targets file (needs 'base_workloads' and "
            f"'workloads' with target_metric_name and validation_target_value): {exc!r}"
        ) from None
    version = str(raw.get("benchmark_version", ""))
    return AlgoPerfTargets(Path(path), version, base, workloads)


def base_workload(name: str, targets: AlgoPerfTargets) -> str:
    """The base workload of a (variant) workload: the longest base name equal to it or prefixing it.

    `fastmri_tanh` -> `fastmri`; `imagenet_resnet_silu` -> `imagenet_resnet`; `ogbg` -> `ogbg`.

    Raises:
      UsageError: no base workload of the targets file is a prefix of `name`.
    """
    matches = [b for b in targets.base_workloads if name == b or name.startswith(b + "_")]
    if not matches:
        raise UsageError(
            f"workload {name!r} has no base workload in {targets.path} "
            f"(base workloads: {', '.join(targets.base_workloads)})"
        )
    return max(matches, key=len)


def find_targets_file(log_dir: Path) -> Path:
    """The one `workload_targets*.json` in `log_dir`, else in its parent.

    Raises:
      UsageError: none, or several in the first folder that has any.
    """
    for folder in (log_dir, log_dir.parent):
        found = sorted(folder.glob("workload_targets*.json"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise UsageError(f"{folder}: several targets files ({names}); pass --targets FILE")
    raise UsageError(
        f"no workload_targets*.json in {log_dir} or {log_dir.parent}; pass --targets FILE"
    )


def import_algoperf(log_dir: Path, store: ResultsStore, targets_path: Path | None = None) -> int:
    """Imports every trial under `log_dir` (the folder holding the submissions) into `store`.

    Args:
      log_dir: `<log_dir>/<submission>/study_<k>/<workload>_<framework>/trial_<i>/`.
      store: the results store to append to.
      targets_path: AlgoPerf targets JSON; None: the one `workload_targets*.json` found in
        `log_dir` or its parent.

    Returns:
      The number of trials written (0 when all were imported before).

    Raises:
      UsageError: `log_dir` holds no logs, a folder name or workload is not AlgoPerf's, or the
        targets file cannot be found or read.
      ResultsSchemaError: an eval CSV is unreadable or lacks `score`, `global_step` or the
        target column.
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise UsageError(f"AlgoPerf log folder {log_dir} does not exist")
    targets = load_targets(targets_path if targets_path else find_targets_file(log_dir))
    csvs = sorted(log_dir.glob(f"*/study_*/*/trial_*/{_CSV_NAME}"))
    if not csvs:
        raise UsageError(
            f"no AlgoPerf logs under {log_dir}: expected "
            f"<submission>/study_<k>/<workload>_<jax|pytorch>/trial_<i>/{_CSV_NAME}"
        )
    provenance = _provenance(f"import-algoperf {log_dir}")
    written = 0
    keys = [_trial_key(path, targets) for path in csvs]  # every folder name checked before writing
    for path, key in zip(csvs, keys, strict=True):
        if store.has_trial(key.trial_id):
            continue
        trial_row, eval_rows = _rows(path, key, targets, provenance)
        written += int(store.write_trial(trial_row, eval_rows))
    return written


@dataclass(frozen=True, slots=True)
class _TrialKey:
    """Where one CSV sits: submission, study, workload (maybe a variant) and its base workload,
    framework, trial, and the derived id."""

    submission: str
    study: int
    workload: str
    base: str
    framework: str
    trial_index: int
    trial_id: str


def _trial_key(path: Path, targets: AlgoPerfTargets) -> _TrialKey:
    """Parses `<submission>/study_<k>/<workload>_<framework>/trial_<i>/` off a CSV path."""
    folders = "/".join(path.parts[-5:-1])
    match = _LAYOUT.match(folders)
    if match is None:
        raise UsageError(
            f"{path}: expected folders <submission>/study_<k>/<workload>_<jax|pytorch>/trial_<i>, "
            f"found {folders}"
        )
    if match["workload"] not in targets.workloads:
        raise UsageError(f"{path}: workload {match['workload']!r} has no target in {targets.path}")
    digest = hashlib.sha256("\x1f".join(("algoperf", *path.parts[-5:-1])).encode()).hexdigest()
    submission, workload, framework = match["submission"], match["workload"], match["framework"]
    study, trial_index = int(match["study"]), int(match["trial"])
    base = base_workload(workload, targets)
    return _TrialKey(submission, study, workload, base, framework, trial_index, digest[:16])


def _rows(
    path: Path, key: _TrialKey, targets: AlgoPerfTargets, provenance: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The trial row and eval rows of one CSV."""
    target = targets.workloads[key.workload]
    metric = f"validation/{target.metric_name}"
    frame = _read_csv(path, ["score", "global_step", metric])
    minimize = is_minimized(metric)
    values = pd.to_numeric(frame[metric], errors="coerce").astype(float)
    met = values <= target.value if minimize else values >= target.value
    hit = int(met.to_numpy().argmax()) if bool(met.any()) else None
    finite = values[values.map(math.isfinite)]
    best = (finite.min() if minimize else finite.max()) if len(finite) else None
    last = frame.iloc[-1]
    origin: dict[str, Any] = {
        "source": "algoperf",
        "version": targets.benchmark_version,
        "framework": key.framework,
    }
    if key.base != key.workload:
        origin.update(variant=key.workload, held_out=True)
    trial: dict[str, Any] = dict.fromkeys(TRIALS_SCHEMA.names)
    trial.update(provenance)
    trial.update(
        trial_id=key.trial_id,
        workload=key.base,
        scale="full",
        submission=key.submission,
        hparams_json=_hparams_json(path.parent),
        ruleset="external",
        ruleset_json=json.dumps(origin, sort_keys=True),
        study=key.study,
        trial_index=key.trial_index,
        hardware_class=ALGOPERF_HARDWARE_CLASS,
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
    return trial, _eval_rows(frame, key.trial_id, provenance)


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    """The CSV with its eval rows, checked to hold the `required` columns and at least one row."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:  # pandas' parser and empty-data errors are ValueErrors
        raise ResultsSchemaError(f"{path}: unreadable AlgoPerf eval CSV ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ResultsSchemaError(
            f"{path}: AlgoPerf eval CSV lacks column(s) {missing} "
            f"(needs {required}; has {list(frame.columns)})"
        )
    frame = frame.dropna(subset=["score", "global_step"])
    if frame.empty:
        raise ResultsSchemaError(f"{path}: AlgoPerf eval CSV has no row with score, global_step")
    return frame.reset_index(drop=True)


def _eval_rows(frame: pd.DataFrame, trial_id: str, provenance: dict[str, Any]) -> list[dict]:
    """One row per (eval row, curve column), in eval then column order."""
    curves = [c for c in frame.columns if str(c).startswith(_CURVE_PREFIXES)]
    columns = {c: pd.to_numeric(frame[c], errors="coerce").tolist() for c in curves}
    steps = frame["global_step"].astype("int64").tolist()
    times = frame["score"].astype(float).tolist()
    rows = []
    for eval_index, (step, time_s) in enumerate(zip(steps, times, strict=True)):
        for metric, values in columns.items():
            row = dict(provenance)
            row.update(
                trial_id=trial_id,
                eval_index=eval_index,
                step=step,
                tokens=None,
                train_time_s=time_s,
                metric=metric,
                value=_float_or_none(values[eval_index]),
            )
            rows.append(row)
    return rows


def _hparams_json(trial_dir: Path) -> str | None:
    """AlgoPerf's `hparameters.json` of the trial as canonical JSON, when it was kept."""
    path = trial_dir / "hparameters.json"
    if not path.is_file():
        return None
    try:
        return json.dumps(json.loads(path.read_text()), sort_keys=True)
    except (OSError, ValueError) as exc:
        raise ResultsSchemaError(f"{path}: unreadable hyperparameters ({exc})") from None


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
