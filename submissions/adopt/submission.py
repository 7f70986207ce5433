"""ADOPT (Taniguchi et al. 2024) as optax.contrib.adopt, run on the PyTorch model via the bridge."""

import optax

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"beta2": 0.9999, "eps": 1e-6}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> optax.GradientTransformation:
    """optax.contrib.adopt (clipped) plus decoupled decay on the roles `params.decay_mask()` marks.

    Update rule (θ = param, g = grad, m, v = moments, η = lr, s = schedule(k), k = step from 0,
    λ = weight_decay, 0 on norm/bias/scalar roles, β2 = 0.9999, ε = 1e-6):
        k = 0:  v ← g²,  m = 0                   (the first step only initializes v)
        k ≥ 1:  m ← β1·m + (1 − β1)·clip(g / max(√v, ε), −k^¼, k^¼)   (v of the previous step)
                v ← β2·v + (1 − β2)·g²
        u = −η·(m + λ·θ)
        θ ← θ + s·u                  (the bridge applies the schedule to the whole update)
    State: m, v (two tensors per parameter, dtype of θ) and one int32 count.
    """
    lr = hp["lr"]
    return optax.chain(
        optax.contrib.adopt(
            learning_rate=lr, b1=hp["beta1"], b2=DEFAULTS["beta2"], eps=DEFAULTS["eps"]
        ),
        # optax's adopt has no decay: add −η·λ·θ after it, scaled by η as optax.adamw's is.
        optax.add_decayed_weights(-lr * hp["weight_decay"], mask=params.decay_mask()),
    )
