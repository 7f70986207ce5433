"""AdEMAMix (Pagliardini et al. 2024) as optax.contrib.ademamix, with the paper's α, β3 warmups."""

import math
from collections.abc import Callable

import jax.numpy as jnp
import optax

from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo

DEFAULTS = {"beta1": 0.9, "beta2": 0.999, "alpha": 5.0, "eps": 1e-8}


def _progress(count: jnp.ndarray, total_steps: int) -> jnp.ndarray:
    """min(1, k/T), in the default float dtype (an int32 count divides in float32 even in x64)."""
    return jnp.minimum(1.0, jnp.asarray(count, float) / total_steps)


def _alpha_warmup(alpha: float, total_steps: int) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """α_k = α·min(1, k/T): the slow momentum's weight grows linearly from 0 over T steps."""
    return lambda count: alpha * _progress(count, total_steps)


def _beta3_warmup(
    beta_start: float, beta3: float, total_steps: int
) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """β3_k = exp(ln βs·ln β3 / ((1 − a)·ln β3 + a·ln βs)), a = min(1, k/T).

    The slow EMA's half-life ln ½ / ln β3_k grows linearly in k, from that of βs to that of β3.
    """
    log_start, log_end = math.log(beta_start), math.log(beta3)

    def beta3_at(count: jnp.ndarray) -> jnp.ndarray:
        a = _progress(count, total_steps)
        return jnp.exp(log_start * log_end / ((1 - a) * log_end + a * log_start))

    return beta3_at


def optimizer(
    params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> optax.GradientTransformation:
    """optax.contrib.ademamix with decoupled decay on the roles `params.decay_mask()` marks.

    Update rule (θ = param, g = grad, m1, m2 = fast and slow EMAs, v = second moment, η = lr,
    s = schedule(k), k = step from 0, t = k + 1, T = info.max_steps, λ = weight_decay, 0 on
    norm/bias/scalar roles, β1 = 0.9, β2 = 0.999, α = 5, ε = 1e-8):
        α_k = α·min(1, k/T)
        β3_k = exp(ln β1·ln β3 / ((1 − a)·ln β3 + a·ln β1)),  a = min(1, k/T)
        m1 ← β1·m1 + (1 − β1)·g
        m2 ← β3_k·m2 + (1 − β3_k)·g
        v ← β2·v + (1 − β2)·g²
        m̂1 = m1 / (1 − β1^t),  v̂ = v / (1 − β2^t)      (m2 is not bias-corrected)
        u = −η·((m̂1 + α_k·m2) / (√v̂ + ε) + λ·θ)
        θ ← θ + s·u                  (the bridge applies the schedule to the whole update)
    State: m1, m2, v (three tensors per parameter, dtype of θ) and two int32 counts.
    """
    total_steps = max(1, info.max_steps)
    return optax.contrib.ademamix(
        learning_rate=hp["lr"],
        b1=DEFAULTS["beta1"],
        b2=DEFAULTS["beta2"],
        b3=_beta3_warmup(DEFAULTS["beta1"], hp["beta3"], total_steps),
        alpha=_alpha_warmup(DEFAULTS["alpha"], total_steps),
        eps=DEFAULTS["eps"],
        weight_decay=hp["weight_decay"],
        mask=params.decay_mask(),
    )
