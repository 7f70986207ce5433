"""LARS (You et al. 2017) as optax.lars, run on the PyTorch model through the DLPack bridge."""

import optax

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"trust_coefficient": 0.001}


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> optax.GradientTransformation:
    """optax.lars; decay and trust ratio on the roles `params.decay_mask()` marks, not on the rest.

    Update rule (θ = param, g = grad, w = momentum trace, η = lr, s = schedule(t), μ = momentum,
    λ = weight_decay, κ = 0.001; norms are per tensor). On matrix, conv, embedding, head:
        d = g + λ·θ
        φ = κ·‖θ‖ / ‖d‖             (φ = 1 where ‖θ‖ = 0 or ‖d‖ = 0)
    On norm, bias, scalar (excluded, as SimCLR's and BYOL's LARS exclude biases and norms):
        d = g
        φ = 1
    Then on every tensor:
        w ← μ·w − η·φ·d             (w = −η·v for the PyTorch-form v ← μ·v + φ·d)
        θ ← θ + s·w                  (the bridge applies the schedule to the whole update)
    State: w (one tensor per parameter, dtype of θ).
    """
    return optax.lars(
        learning_rate=hp["lr"],
        weight_decay=hp["weight_decay"],
        weight_decay_mask=params.decay_mask(),
        trust_coefficient=DEFAULTS["trust_coefficient"],
        trust_ratio_mask=params.decay_mask(),
        momentum=hp["momentum"],
    )
