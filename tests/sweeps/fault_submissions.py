"""Small level-1 test submissions that fail on purpose, written into a test's tmp folder.

Each is plain SGD (`torch.optim.SGD` subclassed, acting in `step()`) with one injected fault:

- `RAISE`: raises `RuntimeError` at its `at_step`-th `step()` call -> status `failed`;
- `NAN`: fills every parameter with NaN from its `at_step`-th call on -> status `diverged`;
- `KILL_ONCE`: SIGKILLs its own process at its `at_step`-th call on the first attempt of each
  trial only (a marker file per hyperparameter point, in `marker_dir`) -> retried, then finishes;
- `KILL_ALWAYS`: SIGKILLs its own process at its `at_step`-th call on every attempt -> `killed`.

`step()` calls are counted per process and include the runner's untimed compile warm-up step, so
call 3 is training step 2 (a fault well before the first eval, hence before any checkpoint).
Markers live beside the submission folder, not in it: the folder holds only what the trial id
hashes (`submission.py`, `search_space.json`) and its README, before and after a run.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

__all__ = ["Fault", "write_submission"]

SEARCH_SPACE = {"lr": {"min": 0.01, "max": 0.1, "scaling": "log"}}


class Fault(StrEnum):
    """What a test submission does wrong (see the module docstring)."""

    NONE = "none"
    RAISE = "raise"
    NAN = "nan"
    KILL_ONCE = "kill_once"
    KILL_ALWAYS = "kill_always"


_SOURCE = '''"""Test submission {name!r}: plain SGD with the injected fault {fault!r} \
(at step() call
{at_step}); written by tests/sweeps/fault_submissions.py."""

import hashlib
import json
import os
import signal
from pathlib import Path

import torch

FAULT = {fault!r}
AT_STEP = {at_step!r}
MARKER_DIR = {marker_dir!r}


class FaultySGD(torch.optim.SGD):
    """SGD whose step() misbehaves as FAULT says from its AT_STEP-th call on."""

    def __init__(self, params, lr, point_key):
        super().__init__(params, lr=lr)
        self.calls = 0
        self.point_key = point_key

    def step(self, closure=None):
        self.calls += 1
        if self.calls == AT_STEP:
            self._fault()
        if FAULT == "nan" and self.calls >= AT_STEP:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))
            return None
        return super().step(closure)

    def _fault(self):
        if FAULT == "raise":
            raise RuntimeError(f"injected fault at step() call {{self.calls}}")
        if FAULT == "kill_always":
            os.kill(os.getpid(), signal.SIGKILL)
        if FAULT == "kill_once":
            marker = Path(MARKER_DIR) / f"killed-{{self.point_key}}"
            if not marker.exists():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)


def optimizer(params, hp, info):
    point_key = hashlib.sha256(json.dumps(dict(hp), sort_keys=True).encode()).hexdigest()[:16]
    return FaultySGD(params.torch_groups(0.0), lr=hp["lr"], point_key=point_key)
'''


def write_submission(
    root: Path,
    name: str,
    fault: Fault = Fault.NONE,
    at_step: int = 3,
    marker_dir: Path | None = None,
) -> Path:
    """Writes submission folder `root/name` with `fault` and returns it.

    Args:
      root: the folder to create the submission in (e.g. a test's `tmp_path`).
      name: the submission's folder name (its name in the results store).
      fault: what the submission does wrong.
      at_step: the `step()` call (warm-up included) at which the fault strikes.
      marker_dir: `KILL_ONCE` only: where its markers go; default `root/name-markers` (beside the
        submission folder, outside it).

    Returns:
      The submission folder.
    """
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    markers = marker_dir if marker_dir is not None else root / f"{name}-markers"
    source = _SOURCE.format(
        name=name, fault=str(fault), at_step=at_step, marker_dir=str(markers.resolve())
    )
    (folder / "submission.py").write_text(source)
    (folder / "search_space.json").write_text(json.dumps(SEARCH_SPACE, indent=1) + "\n")
    (folder / "README.md").write_text(f"# {name}\n\nTest submission: SGD with fault `{fault}`.\n")
    return folder
