"""RAdam with decoupled weight decay through torch.optim.RAdam; see README.md."""

import torch

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"beta2": 0.999, "eps": 1e-8}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> torch.optim.Optimizer:
    """RAdam (variance-rectified Adam) with decoupled decay, as torch.optim.RAdam steps it.

    Update rule (θ = param, g = grad, m, v = moments, η = lr · schedule(t), t from 1,
    λ = weight_decay, 0 on norm/bias/scalar roles, β2 = 0.999, ε = 1e-8):
        θ ← θ − η·λ·θ
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        m̂ = m / (1 − β1^t)
        ρ∞ = 2/(1 − β2) − 1,  ρ_t = ρ∞ − 2·t·β2^t / (1 − β2^t)
        if ρ_t > 5:
            r_t = √((ρ_t − 4)(ρ_t − 2)·ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)·ρ_t))
            θ ← θ − η·r_t·m̂·√(1 − β2^t) / (√v + ε)
        else:
            θ ← θ − η·m̂
    State: m, v (two tensors per parameter, dtype of θ) and a step count.
    """
    return torch.optim.RAdam(
        params.torch_groups(hp["weight_decay"]),
        lr=hp["lr"],
        betas=(hp["beta1"], DEFAULTS["beta2"]),
        eps=DEFAULTS["eps"],
        decoupled_weight_decay=True,
    )
