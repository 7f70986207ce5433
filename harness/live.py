"""A trial's live folder: where a running trial leaves what lets it be watched and resumed.

While a trial runs, `LIVE/<trial_id>/` holds

    checkpoint.pt    the trial's checkpoint (`harness.checkpoint`), replaced atomically at each eval
    progress.jsonl   one JSON line per eval point (step, training seconds, metrics), appended
    launch.json      how its launcher started it (`sweeps.launchers`)

This module imports no torch: a sweep's supervisors (Ray workers) read progress and launch records
without paying for it. The launcher removes the folder once the trial's rows are in the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LiveTrial"]


@dataclass(slots=True)
class LiveTrial:
    """The live folder of one trial (created on first write)."""

    folder: Path

    @classmethod
    def under(cls, live_root: str | os.PathLike[str], trial_id: str) -> LiveTrial:
        return cls(Path(live_root) / trial_id)

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def progress_path(self) -> Path:
        return self.folder / "progress.jsonl"

    def append_progress(self, step: int, train_time_s: float, metrics: dict[str, float]) -> None:
        """Appends one eval point; a reader sees whole lines (one small write, then a flush)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"step": step, "train_time_s": train_time_s, "metrics": metrics})
        with open(self.progress_path, "a") as f:
            f.write(line + "\n")
            f.flush()

    def read_progress(self) -> list[dict[str, Any]]:
        """Every eval point written so far, once per step (a resumed trial may repeat a step)."""
        if not self.progress_path.exists():
            return []
        points: dict[int, dict[str, Any]] = {}
        with open(self.progress_path) as f:
            for line in f:
                if line.endswith("\n"):  # a line still being written is read next time
                    point = json.loads(line)
                    points[point["step"]] = point
        return [points[step] for step in sorted(points)]
