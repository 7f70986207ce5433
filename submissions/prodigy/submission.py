"""Prodigy (Mishchenko & Defazio 2024) as optax.contrib.prodigy, with the schedule inside optax.

The harness's warmup + cosine schedule scales Prodigy's learning rate *inside* its d estimate, so
it is handed to optax as the `learning_rate` schedule, and the bridge's multiplier is held at 1.
"""

from collections.abc import Callable

import jax.numpy as jnp
import optax

from harness import warmup_cosine
from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"beta2": 0.999, "eps": 1e-8, "d0": 1e-6, "safeguard_warmup": True}


def schedule(hp: Hyperparameters, info: WorkloadInfo) -> Callable[[int], float]:
    """The bridge's multiplier: always 1, because the schedule runs inside optax (`optimizer`)."""
    return lambda step: 1.0


def _lr_schedule(hp: Hyperparameters, info: WorkloadInfo) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """lr · the harness's default multiplier at optax's step count k (held at its last value)."""
    harness_schedule = warmup_cosine(hp, info)
    table = jnp.asarray([hp["lr"] * harness_schedule(k) for k in range(max(1, info.max_steps))])
    return lambda count: table[jnp.minimum(count, len(table) - 1)]


def _prodigy_masked_decay(
    learning_rate: Callable[[jnp.ndarray], jnp.ndarray], beta1: float, weight_decay: float,
    mask: list[bool],
) -> optax.GradientTransformation:  # fmt: skip
    """optax.contrib.prodigy with its decoupled decay −λ·η_k·θ on the `mask`ed parameters only.

    optax's prodigy decays every parameter (it takes no mask); the decay never enters its d
    estimate, so adding it here for the masked parameters gives exactly optax's rule restricted
    to them. η_k = d_k·lr_k·bc_k is recomputed from the incoming state as optax computes it.
    """
    beta2 = DEFAULTS["beta2"]
    prodigy = optax.contrib.prodigy(
        learning_rate=learning_rate,
        betas=(beta1, beta2),
        eps=DEFAULTS["eps"],
        estim_lr0=DEFAULTS["d0"],
        weight_decay=0.0,
        safeguard_warmup=DEFAULTS["safeguard_warmup"],
    )

    def update(
        grads: optax.Updates, state: optax.OptState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.OptState]:
        updates, new_state = prodigy.update(grads, state, params)
        t = state.count + 1
        bias_correction = jnp.sqrt(1 - beta2**t) / (1 - beta1**t)
        step_size = state.estim_lr * learning_rate(state.count) * bias_correction
        decayed = [
            u - weight_decay * step_size * p if is_decayed else u
            for u, p, is_decayed in zip(updates, params, mask, strict=True)
        ]
        return decayed, new_state

    return optax.GradientTransformation(prodigy.init, update)


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> optax.GradientTransformation:
    """optax.contrib.prodigy (bias-corrected, safeguarded warmup), decay on `decay_mask()` roles.

    Update rule (θ = param, g = grad, θ0 = initial θ, m, v = moments, r = weighted gradient sum,
    N = weighted numerator, d = distance estimate, k = step from 0, t = k + 1,
    lr_k = lr · schedule(k) (the harness's warmup + cosine, inside optax), λ = weight_decay, 0 on
    norm/bias/scalar roles, β2 = 0.999, β3 = √β2, ε = 1e-8, d_0 = 1e-6; ⟨·,·⟩ and ‖·‖₁ run over
    all parameters):
        η_k = d_k·lr_k·√(1 − β2^t) / (1 − β1^t)
        m ← β1·m + (1 − β1)·d_k·g
        v ← β2·v + (1 − β2)·d_k²·g²
        r ← β3·r + (d_k²/d_0)·g                       (safeguarded warmup: no lr_k here)
        N ← β3·N + (d_k/d_0)·η_k·⟨g, θ0 − θ⟩
        d_{k+1} = max(d_k, N / ‖r‖₁)
        θ ← θ − η_k·(m / (√v + d_{k+1}·ε) + λ·θ)      (the bridge's multiplier is 1)
    State: m, v, r, θ0 (four tensors per parameter, dtype of θ), d, N (two scalars) and an int32
    count.
    """
    return _prodigy_masked_decay(
        _lr_schedule(hp, info), hp["beta1"], hp["weight_decay"], params.decay_mask()
    )
