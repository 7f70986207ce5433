"""Signum (Bernstein et al. 2018) as optax.signum, run on the PyTorch model through the bridge."""

import optax

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> optax.GradientTransformation:
    """optax.signum plus decoupled decay on the roles `params.decay_mask()` marks.

    Update rule (θ = param, g = grad, m = momentum, η = lr, s = schedule(t), β = momentum,
    λ = weight_decay, 0 on norm/bias/scalar roles; β = 0 is signSGD):
        m ← β·m + (1 − β)·g
        u = −η·(sign(m) + λ·θ)
        θ ← θ + s·u                  (the bridge applies the schedule to the whole update)
    State: m (one tensor per parameter, dtype of θ) and one int32 count.
    """
    lr = hp["lr"]
    return optax.chain(
        optax.signum(learning_rate=lr, beta=hp["momentum"]),
        # optax.signum has no decay: add −η·λ·θ after it, scaled by η as optax.lion's is.
        optax.add_decayed_weights(-lr * hp["weight_decay"], mask=params.decay_mask()),
    )
