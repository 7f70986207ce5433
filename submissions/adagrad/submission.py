"""AdaGrad through torch.optim.Adagrad; see README.md for the update rule."""

import torch

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"eps": 1e-10, "lr_decay": 0.0}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> torch.optim.Optimizer:
    """AdaGrad with coupled L2 decay, as torch.optim.Adagrad steps it.

    Update rule (θ = param, g = grad, G = sum of squared grads, η = lr · schedule(t),
    λ = weight_decay, 0 on norm/bias/scalar roles, G₀ = initial_accumulator_value, ε = 1e-10):
        g ← g + λ·θ
        G ← G + g²
        θ ← θ − η·g / (√G + ε)
    State: G (one tensor per parameter, dtype of θ) and a step count.
    """
    return torch.optim.Adagrad(
        params.torch_groups(hp["weight_decay"]),
        lr=hp["lr"],
        initial_accumulator_value=hp["initial_accumulator_value"],
        **DEFAULTS,
    )
