"""Adam-mini (Zhang et al. 2024): Adam with one second moment per block; see README.md."""

import torch

from harness.contract import NO_DECAY_ROLES, Role

DEFAULTS = {"beta2": 0.999, "eps": 1e-8}


def block_rows(tensor, role):
    """`tensor` viewed as (blocks, elements per block): each row shares one second moment.

    matrix, conv, head: one block per output neuron (row of dim 0; a conv filter per out channel).
    embedding: one block per token row (a vector along the last, embedding-width, dimension).
    norm, bias, scalar: one block for the whole tensor.
    """
    if role in (Role.MATRIX, Role.CONV, Role.HEAD) and tensor.dim() >= 2:
        return tensor.reshape(tensor.shape[0], -1)
    if role is Role.EMBEDDING and tensor.dim() >= 2:
        return tensor.reshape(-1, tensor.shape[-1])
    return tensor.reshape(1, -1)


def adam_mini_update(param, grad, state, lr, beta1, beta2, eps, weight_decay, role):
    """One Adam-mini step for one tensor, in place (Zhang et al. 2024, Algorithm 1).

    Update rule (θ = param, g = grad, m = state["m"] (per element), v_b = state["v"][b] (one per
    block b of `block_rows`), t = state["step"] from 1, η = lr, λ = weight_decay):
        θ ← θ − η·λ·θ
        m ← β1·m + (1 − β1)·g
        v_b ← β2·v_b + (1 − β2)·mean_{i∈b}(g_i²)
        m̂ = m / (1 − β1^t),  v̂_b = v_b / (1 − β2^t)
        θ_i ← θ_i − η·m̂_i / (√v̂_b + ε)        for every element i of block b
    Defaults: β1 = 0.9, β2 = 0.999, ε = 1e-8 (outside the square root, after bias correction).
    State: m (one tensor like θ) and v (one scalar per block).
    Sources differ: the paper splits attention Q/K by head; roles carry no head structure, so they
    get one block per output neuron (a finer split). Implementations differ on embedding and
    output layers (some keep Adam's per-element v there); this follows the paper's per-token rule.
    """
    m, v, step = state["m"], state["v"], state["step"]
    param.mul_(1 - lr * weight_decay)
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).add_(block_rows(grad, role).square().mean(dim=1), alpha=1 - beta2)
    m_hat = m / (1 - beta1**step)
    denom = (v / (1 - beta2**step)).sqrt_().add_(eps)
    block_rows(param, role).sub_(lr * block_rows(m_hat, role) / denom.unsqueeze(1))


class AdamMini(torch.optim.Optimizer):
    """Adam-mini over param groups that each carry a `role` (it decides the blocks)."""

    def __init__(self, groups, lr, beta1, beta2, eps):
        super().__init__(groups, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=0.0))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, beta1, beta2, eps = group["lr"], group["beta1"], group["beta2"], group["eps"]
            wd = group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    dtype = torch.promote_types(param.dtype, torch.float32)
                    blocks = block_rows(param, group["role"]).shape[0]
                    state["step"] = 0
                    state["m"] = torch.zeros_like(param, dtype=dtype)
                    state["v"] = torch.zeros(blocks, dtype=dtype, device=param.device)
                state["step"] += 1
                grad = param.grad.to(state["m"].dtype)
                adam_mini_update(param, grad, state, lr, beta1, beta2, eps, wd, group["role"])


def optimizer(params, hp, info):
    groups = []
    for role in Role:
        members = params.with_roles(role)
        if members:
            decay = 0.0 if role in NO_DECAY_ROLES else hp["weight_decay"]
            groups.append({"params": members, "role": role, "weight_decay": decay})
    return AdamMini(
        groups, lr=hp["lr"], beta1=hp["beta1"], beta2=DEFAULTS["beta2"], eps=DEFAULTS["eps"]
    )
