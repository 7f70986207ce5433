"""RMSprop through torch.optim.RMSprop; see README.md for the update rule."""

import torch

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"eps": 1e-8, "momentum": 0.0, "centered": False}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> torch.optim.Optimizer:
    """RMSprop with coupled L2 decay, as torch.optim.RMSprop steps it (ρ is torch's `alpha`).

    Update rule (θ = param, g = grad, E = mean square, η = lr · schedule(t),
    λ = weight_decay, 0 on norm/bias/scalar roles, ρ = rho, ε = 1e-8):
        g ← g + λ·θ
        E ← ρ·E + (1 − ρ)·g²
        θ ← θ − η·g / (√E + ε)
    State: E (one tensor per parameter, dtype of θ) and a step count.
    """
    return torch.optim.RMSprop(
        params.torch_groups(hp["weight_decay"]), lr=hp["lr"], alpha=hp["rho"], **DEFAULTS
    )
