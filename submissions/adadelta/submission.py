"""Adadelta through torch.optim.Adadelta; see README.md for the update rule."""

import torch

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"eps": 1e-6}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> torch.optim.Optimizer:
    """Adadelta with coupled L2 decay, as torch.optim.Adadelta steps it.

    Update rule (θ = param, g = grad, E_g = mean square of g, E_Δ = mean square of Δ,
    η = lr · schedule(t), λ = weight_decay, 0 on norm/bias/scalar roles, ρ = rho, ε = 1e-6):
        g ← g + λ·θ
        E_g ← ρ·E_g + (1 − ρ)·g²
        Δ = √(E_Δ + ε) / √(E_g + ε) · g
        E_Δ ← ρ·E_Δ + (1 − ρ)·Δ²
        θ ← θ − η·Δ
    State: E_g, E_Δ (two tensors per parameter, dtype of θ) and a step count.
    """
    return torch.optim.Adadelta(
        params.torch_groups(hp["weight_decay"]), lr=hp["lr"], rho=hp["rho"], **DEFAULTS
    )
