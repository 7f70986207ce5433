"""AdamW (Loshchilov & Hutter 2019) through torch.optim.AdamW; see README.md for the update rule."""

import torch

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"beta2": 0.999, "eps": 1e-8}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> torch.optim.Optimizer:
    """AdamW with decoupled decay, as torch.optim.AdamW steps it.

    Update rule (θ = param, g = grad, m, v = moments, η = lr · schedule(t), t from 1,
    λ = weight_decay, 0 on norm/bias/scalar roles, β2 = 0.999, ε = 1e-8):
        θ ← θ − η·λ·θ
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)
        θ ← θ − η·m̂ / (√v̂ + ε)
    State: m, v (two tensors per parameter, dtype of θ) and a step count.
    """
    return torch.optim.AdamW(
        params.torch_groups(hp["weight_decay"]),
        lr=hp["lr"],
        betas=(hp["beta1"], DEFAULTS["beta2"]),
        eps=DEFAULTS["eps"],
    )
