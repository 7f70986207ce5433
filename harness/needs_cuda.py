"""One clear line when a submission hard-codes CUDA (`torch.device("cuda")`, `.cuda()`,
`torch.zeros(..., device="cuda")`) and the machine or the trial has none.

Without it, a CPU-only torch build answers with `AssertionError: Torch not compiled with CUDA
enabled` from deep inside torch, a CUDA build on a machine without a GPU with a driver error, and a
GPU machine running the trial on the CPU with a device-mismatch error; none says which line of
the submission asked for CUDA. `needs_cuda` turns those errors into a message naming the
submission's file and line; the trial boundary (`harness.runner`) records it as the first line of
a `failed` trial's error, and `load_submission` raises it for CUDA use at import.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from harness.errors import ContractError

__all__ = ["needs_cuda", "needs_cuda_line"]

_MARK = "needs CUDA"
# What torch says when CUDA is asked for and there is none: a CPU-only build, no driver, no GPU.
_NO_CUDA = (
    "Torch not compiled with CUDA enabled",
    "Found no NVIDIA driver",
    "No CUDA GPUs are available",
    "no CUDA-capable device",
    "CUDA driver initialization",
    "Cannot access accelerator device when none is available",
)
_MISMATCH = "Expected all tensors to be on the same device"


def needs_cuda(error: BaseException, folder: Path, device: str) -> str | None:
    """The one-line message if `error` is the submission in `folder` asking for CUDA that this
    machine (or, for a trial on `device` cpu, the trial) lacks; None for any other error."""
    text = str(error)
    if isinstance(error, ContractError) and _MARK in text:
        return text.splitlines()[0]  # made here already (at import)
    is_cuda_error = isinstance(error, AssertionError | RuntimeError)
    is_missing = is_cuda_error and any(s in text for s in _NO_CUDA)
    is_mismatch = isinstance(error, RuntimeError) and _MISMATCH in text and "cuda" in text
    if not (is_missing or is_mismatch):
        return None
    import torch

    where = _submission_line(error, folder)
    if is_missing and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "no CUDA device is visible"
        return (
            f"{where}: the submission {_MARK} ({text.splitlines()[0]}), which this machine "
            f"lacks (torch {torch.__version__}: {build}); run it on a machine with a GPU, "
            "with --device cuda"
        )
    if is_mismatch and device == "cpu":
        return (
            f"{where}: the submission {_MARK}: it puts tensors on a CUDA device while this "
            "trial runs on the CPU; run it with --device cuda"
        )
    return None


def needs_cuda_line(error: str | None) -> str | None:
    """The message of a trial's recorded `error` that `needs_cuda` made (its first line)."""
    first = (error or "").partition("\n")[0]
    return first if _MARK in first and not first.startswith("Traceback") else None


def _submission_line(error: BaseException, folder: Path) -> str:
    """`file:line (function)` of the innermost frame of `error` in the submission's folder."""
    folder = folder.resolve()
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if Path(f.filename).resolve().is_relative_to(folder)
    ]
    if not frames:
        return str(folder / "submission.py")
    frame = frames[-1]
    return f"{frame.filename}:{frame.lineno} (in {frame.name}: {(frame.line or '').strip()})"
