"""Muon (Jordan et al. 2024) on the matrix and conv roles, AdamW on the rest; see README.md.

Hand-written rather than `torch.optim.Muon`, which always runs Newton-Schulz in bfloat16 (on CPU
and for float64 parameters too), so its update could not be checked against the equations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from harness.contract import Hyperparameters, ParamGroups, Role, WorkloadInfo

MUON_ROLES = (Role.MATRIX, Role.CONV)
DEFAULTS: dict[str, Any] = {
    "ns_coefficients": (3.4445, -4.7750, 2.0315),  # (a, b, c) of the quintic iteration
    "ns_steps": 5,
    "eps": 1e-7,  # in X₀ = M / (‖M‖_F + ε)
    "adam_lr_ratio": 0.15,  # AdamW's learning rate is 0.15·lr (4.7e-3 at the centre lr = 0.0316)
    "adam_betas": (0.9, 0.95),
    "adam_eps": 1e-8,
}


def newton_schulz(
    matrix: torch.Tensor, coefficients: Sequence[float], steps: int, eps: float
) -> torch.Tensor:
    """Approximate orthogonalization U·Vᵀ of `matrix` = U·S·Vᵀ by a quintic Newton-Schulz iteration.

    Iteration ((a, b, c) = `coefficients`, M = `matrix`, transposed first when rows > cols so that
    A = X·Xᵀ is the smaller Gram matrix, and transposed back at the end):
        X₀ = M / (‖M‖_F + ε)
        A = X·Xᵀ
        X ← a·X + (b·A + c·A²)·X        (`steps` times)
    The coefficients are tuned for speed, not convergence: singular values land in about
    [0.7, 1.2], not exactly at 1. Computed in bfloat16 on CUDA (as the reference implementation)
    and in `matrix`'s own dtype elsewhere; returned in `matrix`'s dtype.
    """
    a, b, c = coefficients
    x = matrix.bfloat16() if matrix.is_cuda else matrix
    is_tall = x.size(0) > x.size(1)
    if is_tall:
        x = x.mT
    x = x / (x.norm() + eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    if is_tall:
        x = x.mT
    return x.to(matrix.dtype)


def muon_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    momentum_buffer: torch.Tensor,
    lr: float,
    momentum: float,
    weight_decay: float,
) -> None:
    """One Muon step for one matrix, in place (Jordan et al. 2024).

    Update rule (θ = param viewed as a rows×cols matrix (a conv filter (out, in, kh, kw) as
    out × in·kh·kw), g = grad, B = momentum_buffer, μ = momentum, η = lr·schedule(t),
    λ = weight_decay):
        B ← μ·B + g                                   (PyTorch form; B starts at 0)
        M = g + μ·B                                   (Nesterov)
        O = NewtonSchulz5(M)                          (see `newton_schulz`)
        θ ← θ − η·λ·θ                                 (decoupled decay)
        θ ← θ − η·max(1, rows/cols)^½·O
    Defaults: μ = 0.95, (a, b, c) = (3.4445, −4.7750, 2.0315), 5 steps, ε = 1e-7.
    State: B (one tensor shaped like θ, in θ's dtype).
    Sources differ: the reference code keeps B as an average (B ← μ·B + (1 − μ)·g,
    M = (1 − μ)·g + μ·B); that scales M by (1 − μ), which the normalization in X₀ removes, so the
    two forms differ only through ε. The max(1, rows/cols)^½ scale is the reference code's for a
    matrix; for a conv filter the reference takes the 4-D tensor's last two dimensions,
    max(1, kh/kw)^½, where this takes the flattened matrix's (README: where the two differ).
    Moonshot's "Muon is Scalable" uses 0.2·√max(rows, cols) instead.
    """
    momentum_buffer.mul_(momentum).add_(grad)
    nesterov = grad.add(momentum_buffer, alpha=momentum)
    matrix = nesterov.reshape(len(nesterov), -1)
    rows, cols = matrix.shape
    ortho = newton_schulz(
        matrix, DEFAULTS["ns_coefficients"], DEFAULTS["ns_steps"], DEFAULTS["eps"]
    )
    param.mul_(1.0 - lr * weight_decay)
    param.add_(ortho.view_as(param), alpha=-lr * max(1.0, rows / cols) ** 0.5)


class Muon(torch.optim.Optimizer):
    """Muon over matrices and conv filters; the update rule is `muon_update`."""

    def __init__(self, params: list[torch.nn.Parameter], lr: float, momentum: float,
                 weight_decay: float) -> None:  # fmt: skip
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

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
                state = self.state[param]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(param)
                muon_update(param, param.grad, state["momentum_buffer"], group["lr"],
                            group["momentum"], group["weight_decay"])  # fmt: skip
        return loss


def optimizer(params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo) -> list[Any]:
    """Muon on matrix and conv roles; AdamW at lr·adam_lr_ratio on the others (decay masked)."""
    matrices = params.with_roles(*MUON_ROLES)
    decayed, undecayed = [], []
    for param, role, decays in zip(params.params, params.roles, params.decay_mask(), strict=True):
        if role not in MUON_ROLES:
            (decayed if decays else undecayed).append(param)
    groups = [
        {"params": decayed, "weight_decay": hp["weight_decay"]},
        {"params": undecayed, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    optimizers: list[torch.optim.Optimizer] = []
    if matrices:
        optimizers.append(
            Muon(matrices, lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"])
        )
    if groups:
        adam_lr = hp["lr"] * DEFAULTS["adam_lr_ratio"]
        optimizers.append(
            torch.optim.AdamW(
                groups, lr=adam_lr, betas=DEFAULTS["adam_betas"], eps=DEFAULTS["adam_eps"]
            )
        )
    return optimizers
