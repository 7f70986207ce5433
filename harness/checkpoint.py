"""A trial's live folder: its checkpoint and its eval progress, so it can resume and be watched.

While a trial runs, `LIVE/<trial_id>/` holds

    checkpoint.pt    everything the rest of the trial depends on, replaced atomically at each eval
    progress.jsonl   one JSON line per eval point (step, training seconds, metrics), appended

A checkpoint is the model's state (parameters and buffers), the optimizer's (`Stepper.snapshot`),
the workload's own (an EMA of the weights), the RNG states, the clock's accumulated seconds and the
record so far. Batches are pure functions of (seed, step), so a trial resumed from the checkpoint of
step k trains on the batches an uninterrupted one would have: a preempted or killed trial loses at
most the steps since its last eval, and its training time and step count continue where they were.
Checkpointing is untimed. The launcher (`sweeps.launchers`) removes the folder once the trial's
rows are in the store.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["LiveTrial", "TrialCheckpoint", "restore_rng", "rng_state"]


@dataclass(slots=True)
class TrialCheckpoint:
    """The state of a trial after `step` steps (see the module docstring)."""

    step: int
    model: dict[str, Any]
    optimizer: Any
    workload: dict[str, Any]
    rng: dict[str, Any]
    clock: dict[str, float]
    record: dict[str, Any]
    restarts: int = 0


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

    def save(self, checkpoint: TrialCheckpoint) -> None:
        """Writes the checkpoint to a temporary name and renames it over the previous one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".checkpoint.{uuid.uuid4().hex}.tmp"
        try:
            torch.save({name: getattr(checkpoint, name) for name in TrialCheckpoint.__slots__}, tmp)
            os.replace(tmp, self.checkpoint_path)
        finally:
            tmp.unlink(missing_ok=True)

    def load(self) -> TrialCheckpoint | None:
        """The last checkpoint, or None when the trial has none (a fresh start)."""
        if not self.checkpoint_path.exists():
            return None
        values = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        return TrialCheckpoint(**values)

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


def rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
