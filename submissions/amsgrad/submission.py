"""AMSGrad with decoupled weight decay through torch.optim.AdamW(amsgrad=True); see README.md."""

import torch

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"beta2": 0.999, "eps": 1e-8}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> torch.optim.Optimizer:
    """AMSGrad in torch's form (max of the raw v, then bias-corrected), with decoupled decay.

    Update rule (θ = param, g = grad, m, v = moments, v_max = running max of v,
    η = lr · schedule(t), t from 1, λ = weight_decay, 0 on norm/bias/scalar roles,
    β2 = 0.999, ε = 1e-8):
        θ ← θ − η·λ·θ
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        v_max ← max(v_max, v)
        θ ← θ − η·(m / (1 − β1^t)) / (√(v_max / (1 − β2^t)) + ε)
    State: m, v, v_max (three tensors per parameter, dtype of θ) and a step count.
    """
    return torch.optim.AdamW(
        params.torch_groups(hp["weight_decay"]),
        lr=hp["lr"],
        betas=(hp["beta1"], DEFAULTS["beta2"]),
        eps=DEFAULTS["eps"],
        amsgrad=True,
    )
