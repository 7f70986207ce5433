"""L-BFGS through torch.optim.LBFGS, one quasi-Newton iteration per training step (level 2).

See README.md for the update rule. torch.optim.LBFGS needs a closure that re-evaluates the loss, so
this is a full-control submission: `update` builds the closure from `ctx.loss`.
"""

from typing import Any

import torch

from harness.contract import Hyperparameters, ParamGroups, StepContext, WorkloadInfo

# One iteration per minibatch and no line search: each training step is one L-BFGS step on that
# step's batch (the stochastic form); a line search would spend extra forward/backward passes on it.
DEFAULTS = {
    "max_iter": 1,
    "line_search_fn": None,
    "tolerance_grad": 1e-7,
    "tolerance_change": 1e-9,
}


class Submission:
    """torch.optim.LBFGS over all parameters, with L2 decay added to the objective.

    Update rule at training step t (θ = all parameters as one flat vector, f = the batch's loss,
    g = ∇F(θ), η = lr · schedule(t), λ = weight_decay, M = the decayed roles' entries,
    m = history_size; (s_i, y_i) the stored pairs, oldest first, ρ_i = 1/(y_iᵀs_i)):
        F(θ) = f(θ) + ½·λ·‖θ_M‖²
        if max|g| ≤ 1e-7: no step
        if t is the first step:
            d = −g
            τ = η·min(1, 1/‖g‖₁)
        else:
            y = g − g_prev,  s = τ_prev·d_prev
            if yᵀs > 1e-10: append (s, y) (dropping the oldest beyond m);  γ = yᵀs / yᵀy
            q = −g
            for i = newest … oldest:  a_i = ρ_i·s_iᵀq;  q ← q − a_i·y_i
            r = γ·q                    (γ = 1 until a pair is stored)
            for i = oldest … newest:  b_i = ρ_i·y_iᵀr;  r ← r + (a_i − b_i)·s_i
            d = r
            τ = η
        if gᵀd > −1e-9: no step
        θ ← θ + τ·d
    State: d, g_prev and up to m pairs (s_i, y_i), each one flat vector of all parameters.
    """

    def __init__(self, params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo) -> None:
        self._decayed = [p for p, decay in zip(params, params.decay_mask(), strict=True) if decay]
        self._weight_decay = float(hp["weight_decay"])
        self._base_lr = float(hp["lr"])
        self._lbfgs = torch.optim.LBFGS(
            list(params), lr=self._base_lr, history_size=int(hp["history_size"]), **DEFAULTS
        )

    def update(self, batch: Any, step: int, ctx: StepContext) -> torch.Tensor:
        self._lbfgs.param_groups[0]["lr"] = self._base_lr * ctx.lr_multiplier(step)
        data_losses: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            self._lbfgs.zero_grad()
            loss = ctx.loss(batch)
            data_losses.append(loss.detach())
            decay = sum((p.square().sum() for p in self._decayed), torch.zeros_like(loss))
            objective = loss + 0.5 * self._weight_decay * decay
            objective.backward()
            return objective

        self._lbfgs.step(closure)
        return data_losses[0]

    def state_dict(self) -> dict[str, Any]:
        return self._lbfgs.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._lbfgs.load_state_dict(state)
