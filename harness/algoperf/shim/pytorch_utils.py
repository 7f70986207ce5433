"""AlgoPerf's `pytorch_utils`: the process setup helpers PyTorch submissions call at import.

optbench runs a level-3 submission in one process (data-parallel level-3 trials are refused), so
`pytorch_setup` reports no DDP and rank 0; nothing here reads the environment or initialises a
process group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["pytorch_init", "pytorch_setup", "update_batch_norm_fn"]

_BACKUP = "momentum_backup"  # where a frozen BatchNorm keeps its momentum (AlgoPerf's name)


def pytorch_setup() -> tuple[bool, int, torch.device, int]:
    """(use_pytorch_ddp, rank, device, n_gpus) as AlgoPerf's helper returns them.

    The device is `cuda:0` when CUDA is available, else the CPU (AlgoPerf's rule); submissions
    should allocate on their parameters' device, which is the trial's.
    """
    import torch

    has_cuda = torch.cuda.is_available()
    device = torch.device("cuda:0" if has_cuda else "cpu")
    return False, 0, device, torch.cuda.device_count() if has_cuda else 0


def pytorch_init(use_pytorch_ddp: bool, rank: int, profiler: Any = None) -> None:
    """Process initialisation: nothing to do, optbench's runner has set the process up."""
    del use_pytorch_ddp, rank, profiler


def update_batch_norm_fn(module: torch.nn.Module, update_batch_norm: bool) -> None:
    """Freezes (False) or restores (True) a BatchNorm module's running statistics.

    With `update_batch_norm=False` the module still normalises with batch statistics in train mode,
    but its momentum is 0, so `running_mean` / `running_var` do not move. Use it through
    `module.apply(functools.partial(update_batch_norm_fn, update_batch_norm=...))`.
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    if not isinstance(module, _BatchNorm):
        return
    if not update_batch_norm:
        if not hasattr(module, _BACKUP):
            setattr(module, _BACKUP, module.momentum)
        module.momentum = 0.0
    elif hasattr(module, _BACKUP):
        module.momentum = getattr(module, _BACKUP)
        delattr(module, _BACKUP)
