"""SGD with Nesterov momentum through torch.optim.SGD; see README.md for the update rule."""

import torch

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> torch.optim.Optimizer:
    """Nesterov SGD in PyTorch's form (no dampening), with coupled L2 decay.

    Update rule (θ = param, g = grad, v = momentum buffer, η = lr · schedule(t),
    λ = weight_decay, 0 on norm/bias/scalar roles, μ = momentum):
        g ← g + λ·θ
        v ← μ·v + g          (v = g at the first step)
        θ ← θ − η·(g + μ·v)
    State: v (one tensor per parameter, dtype of θ).
    """
    return torch.optim.SGD(
        params.torch_groups(hp["weight_decay"]),
        lr=hp["lr"],
        momentum=hp["momentum"],
        dampening=0.0,
        nesterov=True,
    )
