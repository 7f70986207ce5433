"""A trial's checkpoint, `checkpoint.pt` in its live folder (`harness.live`), so it can resume.

A checkpoint is everything the rest of the trial depends on, replaced atomically at each eval:
the model's state (parameters and buffers), the optimizer's (`Stepper.snapshot`), the workload's
own (an EMA of the weights), the RNG states, the clock's accumulated seconds and the record so far.
Batches are pure functions of (seed, step), so a trial resumed from the checkpoint of step k trains
on the batches an uninterrupted one would have: a preempted or killed trial loses at most the steps
since its last eval, and its training time and step count continue where they were. Checkpointing is
untimed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from harness.atomic import atomic_file
from harness.live import LiveTrial

__all__ = ["TrialCheckpoint", "load_checkpoint", "restore_rng", "rng_state", "save_checkpoint"]


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


def save_checkpoint(live: LiveTrial, checkpoint: TrialCheckpoint) -> None:
    """Writes the checkpoint to a temporary name and renames it over the previous one."""
    live.folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(live.checkpoint_path) as tmp:
        torch.save({name: getattr(checkpoint, name) for name in TrialCheckpoint.__slots__}, tmp)


def load_checkpoint(live: LiveTrial) -> TrialCheckpoint | None:
    """The last checkpoint, or None when the trial has none (a fresh start)."""
    if not live.checkpoint_path.exists():
        return None
    values = torch.load(live.checkpoint_path, map_location="cpu", weights_only=False)
    return TrialCheckpoint(**values)


def rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
