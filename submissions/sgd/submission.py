"""Plain SGD (no momentum) through torch.optim.SGD; see README.md for the update rule."""

import torch

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> torch.optim.Optimizer:
    """SGD with coupled L2 decay, as torch.optim.SGD(momentum=0) steps it.

    Update rule (θ = param, g = grad after the harness clips it to global norm `grad_clip`,
    η = lr · schedule(t), λ = weight_decay, 0 on norm/bias/scalar roles):
        g ← g + λ·θ
        θ ← θ − η·g
    State: none.
    """
    return torch.optim.SGD(params.torch_groups(hp["weight_decay"]), lr=hp["lr"], momentum=0.0)
