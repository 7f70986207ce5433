"""Schedule-Free AdamW (Defazio et al. 2024) through optax.contrib.schedule_free (level 2).

A full-control submission: its learning rate lives in optax's state (the averaging weights use
it), so the warmup runs inside optax and the bridge steps with multiplier 1; `prepare_for_eval`
swaps the model to the averaged point x, and the next `update` swaps it back to y.
"""

from typing import Any

import jax.numpy as jnp
import optax
import torch

from harness.contract import Hyperparameters, ParamGroups, StepContext, WorkloadInfo
from harness.optax_bridge import OptaxOptimizer

DEFAULTS = {"beta2": 0.999, "eps": 1e-8, "weight_lr_power": 2.0}


def schedule_free_adamw(
    lr: float, warmup_steps: int, beta1: float, weight_decay: float, mask: list[bool]
) -> optax.GradientTransformation:
    """optax.contrib.schedule_free_adamw's composition, with its decay restricted to `mask`.

    Update rule (y = param, the training point; z = base iterate; x = average, the evaluation
    point; g = grad at y; v = second moment; k = step from 0, t = k + 1; w = warmup_steps,
    λ = weight_decay, 0 where mask is False; β2 = 0.999, ε = 1e-8, r = 2):
        γ_k = lr·min(1, t/w)                           (warmup, inside optax)
        v ← β2·v + (1 − β2)·g²
        v̂ = v / (1 − β2^t)
        z ← z − γ_k·(g / (√v̂ + ε) + λ·y)
        γmax ← max(γmax, γ_k),  W ← W + γmax^r,  c = γmax^r / W
        x ← (1 − c)·x + c·z                            (x = (y − (1 − β1)·z) / β1 before the step)
        y ← β1·x + (1 − β1)·z
    with x = y = z = θ0 at the start. State: z, v (two tensors per parameter, dtype of θ),
    β1, W, γmax (three scalars, dtype of θ) and three int32 counts.
    Differs from optax's own, which evaluates the warmup at k in the z step but at t in the
    averaging weights: here both use t, as the authors' PyTorch code does ((k + 1)/w).
    """

    def warmup(t: jnp.ndarray) -> jnp.ndarray:
        # t counts from 1, so w = 0 means no warmup; float: an int32 t would divide in float32.
        return lr * jnp.minimum(1.0, jnp.asarray(t, float) / max(warmup_steps, 1))

    adamw_without_momentum = optax.chain(
        optax.scale_by_rms(
            decay=DEFAULTS["beta2"], eps=DEFAULTS["eps"], eps_in_sqrt=False, bias_correction=True
        ),
        optax.add_decayed_weights(weight_decay, mask=mask),
        # scale_by_learning_rate counts from 0, schedule_free from 1: both must see t = k + 1.
        optax.scale_by_learning_rate(lambda count: warmup(count + 1)),
    )
    return optax.contrib.schedule_free(
        adamw_without_momentum,
        learning_rate=warmup,
        b1=beta1,
        weight_lr_power=DEFAULTS["weight_lr_power"],
    )


class Submission:
    """Schedule-Free AdamW over all parameters; the model holds y in training and x at evals."""

    def __init__(self, params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo) -> None:
        warmup_steps = max(0, round(float(hp["warmup_frac"]) * info.max_steps))
        tx = schedule_free_adamw(
            hp["lr"], warmup_steps, hp["beta1"], hp["weight_decay"], params.decay_mask()
        )
        self._params = params.params
        self._beta1 = float(hp["beta1"])
        self._optimizer = OptaxOptimizer(list(self._params), tx)
        self._is_at_eval_point = False

    def update(self, batch: Any, step: int, ctx: StepContext) -> torch.Tensor:
        """One step at y; ignores `ctx.lr_multiplier` (no schedule to decay: that is the point)."""
        self._swap(to_eval_point=False)
        loss = ctx.forward_backward(batch)
        self._optimizer.step(lr_multiplier=1.0)
        return loss

    def prepare_for_eval(self) -> None:
        """Puts the averaged point x into the model, in place, until the next `update`."""
        self._swap(to_eval_point=True)

    def _swap(self, to_eval_point: bool) -> None:
        """Moves the model to x = (y − (1 − β1)·z) / β1 or back to y = β1·x + (1 − β1)·z.

        x is optax.contrib.schedule_free_eval_params(state, y). Both moves are in-place torch
        lerps, as in the authors' `eval()` and `train()` (no compile, no parameter copy):
            x = y + (1 − 1/β1)·(z − y),   y = x + (1 − β1)·(z − x).
        """
        if self._is_at_eval_point == to_eval_point:
            return
        weight = 1.0 - 1.0 / self._beta1 if to_eval_point else 1.0 - self._beta1
        with torch.no_grad():
            for p, z in zip(self._params, self._optimizer.opt_state.z, strict=True):
                p.lerp_(torch.from_dlpack(z), weight)
        self._is_at_eval_point = to_eval_point

    def state_dict(self) -> dict[str, Any]:
        return {"optax": self._optimizer.state_dict(), "is_at_eval_point": self._is_at_eval_point}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._optimizer.load_state_dict(state_dict["optax"])
        self._is_at_eval_point = state_dict["is_at_eval_point"]
