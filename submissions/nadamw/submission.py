"""NAdamW through torch.optim.NAdam(decoupled_weight_decay=True); see README.md."""

import torch

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"beta2": 0.999, "eps": 1e-8, "momentum_decay": 4e-3}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> torch.optim.Optimizer:
    """NAdam with Dozat's momentum schedule and decoupled decay, as torch.optim.NAdam steps it.

    Update rule (θ = param, g = grad, m, v = moments, η = lr · schedule(t), t from 1,
    λ = weight_decay, 0 on norm/bias/scalar roles, ψ = momentum_decay = 0.004,
    β2 = 0.999, ε = 1e-8, Π₀ = 1):
        θ ← θ − η·λ·θ
        μ_t = β1·(1 − ½·0.96^(t·ψ)),  μ_{t+1} = β1·(1 − ½·0.96^((t+1)·ψ))
        Π_t = Π_{t−1}·μ_t
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        D = √(v / (1 − β2^t)) + ε
        θ ← θ − η·(1 − μ_t)/(1 − Π_t)·g/D − η·μ_{t+1}/(1 − Π_t·μ_{t+1})·m/D
    State: m, v (two tensors per parameter, dtype of θ), a step count and Π_t.
    """
    return torch.optim.NAdam(
        params.torch_groups(hp["weight_decay"]),
        lr=hp["lr"],
        betas=(hp["beta1"], DEFAULTS["beta2"]),
        eps=DEFAULTS["eps"],
        momentum_decay=DEFAULTS["momentum_decay"],
        decoupled_weight_decay=True,
    )
