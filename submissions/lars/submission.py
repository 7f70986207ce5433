"""LARS (You et al. 2017) as optax.lars, run on the PyTorch model through the DLPack bridge."""

import optax

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"trust_coefficient": 0.001}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> optax.GradientTransformation:
    """optax.lars with L2 decay on the roles `params.decay_mask()` marks; trust ratio on all.

    Update rule (θ = param, g = grad, w = momentum trace, η = lr, s = schedule(t), μ = momentum,
    λ = weight_decay, 0 on norm/bias/scalar roles, κ = 0.001; norms are per tensor):
        d = g + λ·θ
        φ = κ·‖θ‖ / ‖d‖             (φ = 1 where ‖θ‖ = 0 or ‖d‖ = 0)
        w ← μ·w − η·φ·d             (w = −η·v for the PyTorch-form v ← μ·v + φ·d)
        θ ← θ + s·w                  (the bridge applies the schedule to the whole update)
    State: w (one tensor per parameter, dtype of θ).
    """
    return optax.lars(
        learning_rate=hp["lr"],
        weight_decay=hp["weight_decay"],
        weight_decay_mask=params.decay_mask(),
        trust_coefficient=DEFAULTS["trust_coefficient"],
        momentum=hp["momentum"],
    )
