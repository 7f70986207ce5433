"""Lion (Chen et al. 2023) as optax.lion, run on the PyTorch model through the DLPack bridge."""

import optax

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"beta2": 0.99}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> optax.GradientTransformation:
    """optax.lion with decoupled decay on the roles `params.decay_mask()` marks.

    Update rule (θ = param, g = grad, m = momentum, η = lr, s = schedule(t), λ = weight_decay,
    0 on norm/bias/scalar roles, β2 = 0.99):
        c = β1·m + (1 − β1)·g
        u = −η·(sign(c) + λ·θ)
        m ← β2·m + (1 − β2)·g
        θ ← θ + s·u                  (the bridge applies the schedule to the whole update)
    State: m (one tensor per parameter, dtype of θ) and one int32 count.
    """
    return optax.lion(
        learning_rate=hp["lr"],
        b1=hp["beta1"],
        b2=DEFAULTS["beta2"],
        weight_decay=hp["weight_decay"],
        mask=params.decay_mask(),
    )
