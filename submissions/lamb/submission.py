"""LAMB (You et al. 2020) as optax.lamb, run on the PyTorch model through the DLPack bridge."""

import optax

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"beta2": 0.999, "eps": 1e-6}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> optax.GradientTransformation:
    """optax.lamb with decoupled decay on the roles `params.decay_mask()` marks.

    Update rule (θ = param, g = grad, m, v = moments, η = lr, s = schedule(t), t from 1,
    λ = weight_decay, 0 on norm/bias/scalar roles, β2 = 0.999, ε = 1e-6; norms are per tensor):
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)
        r = m̂ / (√v̂ + ε) + λ·θ
        φ = ‖θ‖ / ‖r‖               (φ = 1 where ‖θ‖ = 0 or ‖r‖ = 0)
        u = −η·φ·r
        θ ← θ + s·u                  (the bridge applies the schedule to the whole update)
    State: m, v (two tensors per parameter, dtype of θ) and one int32 count.
    """
    return optax.lamb(
        learning_rate=hp["lr"],
        b1=hp["beta1"],
        b2=DEFAULTS["beta2"],
        eps=DEFAULTS["eps"],
        weight_decay=hp["weight_decay"],
        mask=params.decay_mask(),
    )
