"""Adafactor through torch.optim.Adafactor; see README.md for the update rule."""

import torch

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

# eps1 = None: torch uses the machine epsilon of each parameter's dtype (1.19e-7 for fp32).
DEFAULTS = {"eps1": None, "eps2": 1e-3, "d": 1.0}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> torch.optim.Optimizer:
    """Adafactor as torch.optim.Adafactor steps it (no first moment, decoupled decay).

    Update rule for a tensor θ of shape (…, r, c) or (n,) (g = grad, t from 1, η = lr · schedule(t),
    λ = weight_decay, 0 on norm/bias/scalar roles, τ = beta2_decay, ε1, ε2 and d from DEFAULTS;
    means and RMS are over elements; ≥2-D tensors are factored on their last two dims):
        β̂ = 1 − t^τ
        ρ = min(η, 1/√t)
        α = max(ε2, RMS(θ))·ρ
        θ ← θ − η·λ·θ
        if θ has ≥ 2 dims:
            R ← β̂·R + (1 − β̂)·mean over c of g²          (shape …, r, 1)
            C ← β̂·C + (1 − β̂)·mean over r of g²          (shape …, 1, c)
            V = R·C / max(mean over r of R, ε1)
        else:
            V ← β̂·V + (1 − β̂)·g²
        U = g / max(√V, ε1)
        θ ← θ − α·U / max(1, RMS(U)/d)
    State: R and C (≥2-D), or V (1-D), dtype of θ, and a step count.
    """
    return torch.optim.Adafactor(
        params.torch_groups(hp["weight_decay"]),
        lr=hp["lr"],
        beta2_decay=hp["beta2_decay"],
        eps=(DEFAULTS["eps1"], DEFAULTS["eps2"]),
        d=DEFAULTS["d"],
    )
