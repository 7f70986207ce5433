"""Shampoo (Gupta et al. 2018) as Distributed Shampoo runs it (Shi et al. 2023); see README.md.

Hand-written: neither torch.optim nor optax provides Shampoo.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.contract import Hyperparameters, ParamGroups, Role, WorkloadInfo

PRECONDITIONED_ROLES = (Role.MATRIX, Role.CONV, Role.EMBEDDING, Role.HEAD)
DEFAULTS: dict[str, Any] = {
    "beta2": 0.95,  # statistics and grafting second moment alike
    "eps": 1e-12,  # added to the statistics' diagonal
    "graft_eps": 1e-8,  # Adam grafting's ε, outside the square root
    "precondition_frequency": 10,  # steps between root recomputations (and before the first)
    "max_preconditioner_dim": 8192,  # a longer side keeps a diagonal statistic
}
ROOT_DTYPE = torch.float64  # the eigendecomposition's precision


def inverse_fourth_root(stat: torch.Tensor, eps: float) -> torch.Tensor:
    """(C + ε·I)^(−1/4) of a symmetric positive semi-definite statistic C; a vector C is a diagonal.

    By eigendecomposition in float64: C = Q·diag(c)·Qᵀ, root = Q·diag((max(c, 0) + ε)^(−1/4))·Qᵀ
    (rounding can make eigenvalues slightly negative, hence the clamp). Returned in C's dtype.
    """
    if stat.ndim == 1:
        return (stat.clamp_min(0) + eps).pow(-0.25)
    eigenvalues, eigenvectors = torch.linalg.eigh(stat.to(ROOT_DTYPE))
    scale = (eigenvalues.clamp_min(0) + eps).pow(-0.25)
    return ((eigenvectors * scale) @ eigenvectors.mT).to(stat.dtype)


def _gram(x: torch.Tensor, is_diagonal: bool) -> torch.Tensor:
    """X·Xᵀ, or only its diagonal (the row sums of X²)."""
    return (x * x).sum(1) if is_diagonal else x @ x.mT


def shampoo_update(param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                   group: dict[str, Any]) -> None:  # fmt: skip
    """One Shampoo step for one tensor, in place.

    Update rule (θ = param, g = grad, m = exp_avg, v = exp_avg_sq, t = step from 1,
    f = precondition_frequency, η = lr·schedule(t), λ = weight_decay; G and M are g and m viewed
    as rows×cols matrices, a conv filter (out, in, kh, kw) as out × in·kh·kw):
        m ← β1·m + (1 − β1)·g                             (momentum, averaged form)
        v ← β2·v + (1 − β2)·g²                            (Adam grafting's second moment)
        A = (m/(1 − β1^t)) / (√(v/(1 − β2^t)) + ε_graft)  (the grafted Adam direction)
      preconditioned roles (matrix, conv, embedding, head):
        L ← β2·L + (1 − β2)·G·Gᵀ                          (its diagonal only if rows > max_dim)
        R ← β2·R + (1 − β2)·Gᵀ·G                          (its diagonal only if cols > max_dim)
        if t mod f = 0:  P_L = (L + ε·I)^(−1/4),  P_R = (R + ε·I)^(−1/4)
        S = P_L·M·P_R
        D = (‖A‖_F / ‖S‖_F)·S  if t ≥ f,  else D = A      (layer-wise grafting)
      other roles (norm, bias, scalar):
        D = A
        θ ← θ − η·λ·θ                                     (decoupled decay)
        θ ← θ − η·D
    Defaults: β1 = 0.95, β2 = 0.95, ε = 1e-12, ε_graft = 1e-8, f = 10, max_dim = 8192.
    State: m, v (shaped like θ); for preconditioned roles L, R and the cached roots P_L, P_R
    (rows² + cols² each, or rows/cols entries for a diagonal side); t (an int).
    Sources differ: Gupta et al. sum the statistics (L ← L + G·Gᵀ) and precondition the raw
    gradient without grafting; this follows Distributed Shampoo (EMA statistics, Adam grafting,
    preconditioner applied to the momentum, no preconditioning before step f).
    """
    state["step"] += 1
    t, beta1, beta2 = state["step"], group["beta1"], group["beta2"]
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    adam = (exp_avg / (1 - beta1**t)) / ((exp_avg_sq / (1 - beta2**t)).sqrt() + group["graft_eps"])
    direction = adam
    if "left" in state:
        matrix = grad.reshape(len(grad), -1)
        left, right = state["left"], state["right"]
        left.mul_(beta2).add_(_gram(matrix, left.ndim == 1), alpha=1 - beta2)
        right.mul_(beta2).add_(_gram(matrix.mT, right.ndim == 1), alpha=1 - beta2)
        frequency = group["precondition_frequency"]
        if t % frequency == 0:
            state["left_root"].copy_(inverse_fourth_root(left, group["eps"]))
            state["right_root"].copy_(inverse_fourth_root(right, group["eps"]))
        if t >= frequency:
            shampoo = _precondition(exp_avg.reshape(matrix.shape), state["left_root"],
                                    state["right_root"]).view_as(param)  # fmt: skip
            tiny = torch.finfo(shampoo.dtype).tiny
            direction = shampoo * (adam.norm() / shampoo.norm().clamp_min(tiny))
    param.mul_(1 - group["lr"] * group["weight_decay"])
    param.add_(direction, alpha=-group["lr"])


def _precondition(matrix: torch.Tensor, left_root: torch.Tensor,
                  right_root: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """P_L·M·P_R, where a vector root is a diagonal matrix."""
    out = left_root[:, None] * matrix if left_root.ndim == 1 else left_root @ matrix
    return out * right_root if right_root.ndim == 1 else out @ right_root


class Shampoo(torch.optim.Optimizer):
    """Shampoo with Adam grafting; the update rule is `shampoo_update`.

    Each param group says whether its tensors are preconditioned (`precondition`); the others
    take the grafted Adam direction alone.
    """

    def __init__(self, groups: list[dict[str, Any]], lr: float, beta1: float) -> None:
        defaults = {"lr": lr, "beta1": beta1, "weight_decay": 0.0, "precondition": False}
        super().__init__(groups, {**defaults, **DEFAULTS})

    def _init_state(self, param: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": 0}
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
        if group["precondition"]:
            rows = len(param)
            for side, dim in (("left", rows), ("right", param.numel() // rows)):
                shape = (dim,) if dim > group["max_preconditioner_dim"] else (dim, dim)
                state[side] = param.new_zeros(shape)
                state[f"{side}_root"] = param.new_zeros(shape)
        return state

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not self.state[param]:
                    self.state[param] = self._init_state(param, group)
                shampoo_update(param, param.grad, self.state[param], group)
        return loss


def optimizer(params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo) -> Shampoo:
    """Shampoo on matrix, conv, embedding and head roles; Adam alone on the rest (decay masked)."""
    buckets: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for param, role, decays in zip(params.params, params.roles, params.decay_mask(), strict=True):
        buckets.setdefault((role in PRECONDITIONED_ROLES, decays), []).append(param)
    # a hyperparameter a search space may set; the reference space leaves it at the default
    frequency = int(hp.get("precondition_frequency", DEFAULTS["precondition_frequency"]))
    groups = [
        {
            "params": ps,
            "precondition": pre,
            "weight_decay": hp["weight_decay"] if decays else 0.0,
            "precondition_frequency": frequency,
        }
        for (pre, decays), ps in buckets.items()
    ]
    return Shampoo(groups, lr=hp["lr"], beta1=hp["beta1"])
