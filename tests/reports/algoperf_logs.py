"""Small AlgoPerf eval logs written by tests, in AlgoPerf's layout and CSV format."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["SMALL_LOG", "write_eval_csv"]

# Three evals of an ogbg trial that reaches the v0.6 target (mAP 0.28098) at the second.
SMALL_LOG: dict[str, list[object]] = {
    "global_step": [10, 20, 30],
    "score": [1.0, 2.0, 3.0],
    "validation/mean_average_precision": [0.1, 0.3, 0.29],
    "train/loss": [1.0, 0.5, 0.4],
}


def write_eval_csv(logs: Path, trial_folder: str, columns: dict[str, list[object]]) -> Path:
    """Writes `logs/<trial_folder>/eval_measurements.csv` with these columns; returns its path."""
    path = logs / trial_folder / "eval_measurements.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(path, index=False)
    return path
