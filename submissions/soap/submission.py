"""SOAP (Vyas et al. 2024): Adam in the eigenbasis of Shampoo's preconditioner; see README.md.

Hand-written: neither torch.optim nor optax provides SOAP.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.contract import Hyperparameters, ParamGroups, Role, WorkloadInfo

ROTATED_ROLES = (Role.MATRIX, Role.CONV, Role.EMBEDDING, Role.HEAD)
DEFAULTS: dict[str, Any] = {
    "beta2": 0.95,  # Adam's second moment
    "shampoo_beta": 0.95,  # the statistics L, R (the authors' default: shampoo_beta = β2)
    "eps": 1e-8,  # outside the square root
    "precondition_frequency": 10,  # steps between eigenbasis refreshes
    "max_preconditioner_dim": 10000,  # a longer side is not rotated
}
EIGH_DTYPE = torch.float64  # the eigendecomposition's precision


def eigenbasis(stat: torch.Tensor) -> torch.Tensor:
    """The eigenvectors Q of a symmetric statistic S = Q·diag(s)·Qᵀ, eigenvalues ascending.

    Computed in float64, returned in S's dtype.
    """
    return torch.linalg.eigh(stat.to(EIGH_DTYPE)).eigenvectors.to(stat.dtype)


def _rotate(matrix: torch.Tensor, left: torch.Tensor | None, right: torch.Tensor | None,
            transpose: bool) -> torch.Tensor:  # fmt: skip
    """Q_Lᵀ·X·Q_R (into the eigenbasis), or Q_L·X·Q_Rᵀ with `transpose` (back); None is I."""
    if left is not None:
        matrix = (left if transpose else left.mT) @ matrix
    if right is not None:
        matrix = matrix @ (right.mT if transpose else right)
    return matrix


def soap_update(param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                group: dict[str, Any]) -> None:  # fmt: skip
    """One SOAP step for one tensor, in place.

    Update rule (θ = param, g = grad, m = exp_avg, v = exp_avg_sq (in the rotated basis),
    t = step from 1, f = precondition_frequency, η = lr·schedule(t), λ = weight_decay; G and M are
    g and m viewed as rows×cols matrices, a conv filter (out, in, kh, kw) as out × in·kh·kw):
        L ← β_s·L + (1 − β_s)·G·Gᵀ                    (rows×rows; none if rows > max_dim: Q_L = I)
        R ← β_s·R + (1 − β_s)·Gᵀ·G                    (cols×cols; none if cols > max_dim: Q_R = I)
        if t = 1 or t mod f = 0:  Q_L = eigenvectors(L),  Q_R = eigenvectors(R)   (eigh)
        G' = Q_Lᵀ·G·Q_R
        m ← β1·m + (1 − β1)·g                         (original basis)
        v ← β2·v + (1 − β2)·G'²                       (rotated basis)
        M' = Q_Lᵀ·M·Q_R
        N = Q_L·[(M'/(1 − β1^t)) / (√(v/(1 − β2^t)) + ε)]·Q_Rᵀ
        θ ← θ − η·λ·θ                                 (decoupled decay)
        θ ← θ − η·N
    Roles without rotation (norm, bias, scalar): Q_L = Q_R = I, which is Adam.
    Defaults: β1 = 0.95, β2 = β_s = 0.95, ε = 1e-8, f = 10, max_dim = 10000.
    State: m, v (shaped like θ); for rotated roles L, Q_L (rows² each) and R, Q_R (cols² each);
    t (an int).
    Sources differ: the authors' code updates L, R after the step (so its first step only sets
    up L, R and the bases and leaves θ unchanged), refreshes the bases by one power iteration and
    a QR decomposition (re-sorting v) after an initial eigh, and adds ε as ε/√(1 − β2^t). Here the
    statistics come first, so a refresh sees the current gradient and step 1 already moves θ
    (along G's polar factor U·Vᵀ for a tensor rotated on both sides); every refresh is an eigh,
    with v kept and its coordinates matched by ascending eigenvalue; ε is Adam's.
    """
    state["step"] += 1
    t, beta1, beta2 = state["step"], group["beta1"], group["beta2"]
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    matrix = grad.reshape(exp_avg_sq.shape)
    left, right, shampoo_beta = state.get("left"), state.get("right"), group["shampoo_beta"]
    if left is not None:
        left.mul_(shampoo_beta).add_(matrix @ matrix.mT, alpha=1 - shampoo_beta)
    if right is not None:
        right.mul_(shampoo_beta).add_(matrix.mT @ matrix, alpha=1 - shampoo_beta)
    if t == 1 or t % group["precondition_frequency"] == 0:
        for stat, name in ((left, "left_basis"), (right, "right_basis")):
            if stat is not None:
                state[name].copy_(eigenbasis(stat))
    left_basis, right_basis = state.get("left_basis"), state.get("right_basis")
    rotated_grad = _rotate(matrix, left_basis, right_basis, transpose=False)
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(rotated_grad, rotated_grad, value=1 - beta2)
    rotated_exp_avg = _rotate(exp_avg.reshape(matrix.shape), left_basis, right_basis, False)
    denominator = (exp_avg_sq / (1 - beta2**t)).sqrt() + group["eps"]
    rotated_step = (rotated_exp_avg / (1 - beta1**t)) / denominator
    step = _rotate(rotated_step, left_basis, right_basis, transpose=True)
    param.mul_(1 - group["lr"] * group["weight_decay"])
    param.add_(step.view_as(param), alpha=-group["lr"])


class SOAP(torch.optim.Optimizer):
    """SOAP; the update rule is `soap_update`.

    Each param group says whether its tensors are rotated (`rotate`); the others run Adam.
    """

    def __init__(self, groups: list[dict[str, Any]], lr: float, beta1: float) -> None:
        defaults = {"lr": lr, "beta1": beta1, "weight_decay": 0.0, "rotate": False}
        super().__init__(groups, {**defaults, **DEFAULTS})

    def _init_state(self, param: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": 0}
        state["exp_avg"] = torch.zeros_like(param)
        # v lives in the rotated basis: a rows×cols matrix for a rotated tensor
        rows = len(param) if param.ndim else 1
        shape = (rows, param.numel() // rows) if group["rotate"] else param.shape
        state["exp_avg_sq"] = param.new_zeros(shape)
        if group["rotate"]:
            for side, dim in (("left", shape[0]), ("right", shape[1])):
                if dim <= group["max_preconditioner_dim"]:
                    state[side] = param.new_zeros(dim, dim)
                    state[f"{side}_basis"] = param.new_zeros(dim, dim)
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
                soap_update(param, param.grad, self.state[param], group)
        return loss


def optimizer(params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo) -> SOAP:
    """SOAP on matrix, conv, embedding and head roles; Adam on the rest (decay masked)."""
    buckets: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for param, role, decays in zip(params.params, params.roles, params.decay_mask(), strict=True):
        buckets.setdefault((role in ROTATED_ROLES, decays), []).append(param)
    # a hyperparameter a search space may set; the reference space leaves it at the default
    frequency = int(hp.get("precondition_frequency", DEFAULTS["precondition_frequency"]))
    groups = [
        {
            "params": ps,
            "rotate": rotate,
            "weight_decay": hp["weight_decay"] if decays else 0.0,
            "precondition_frequency": frequency,
        }
        for (rotate, decays), ps in buckets.items()
    ]
    return SOAP(groups, lr=hp["lr"], beta1=hp["beta1"])
