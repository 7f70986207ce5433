"""GaLore (Zhao et al. 2024): Adam on low-rank projected gradients of matrices; see README.md."""

import torch

from harness.contract import Role

DEFAULTS = {"beta2": 0.999, "eps": 1e-8, "rank_frac": 0.25, "update_proj_gap": 200, "scale": 0.25}


def adam_direction(m, v, grad, step, beta1, beta2, eps):
    """Adam's bias-corrected direction; updates the moments in place and returns N.

    Update rule (g = grad, t = step from 1):
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        N = (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε)      (ε outside the root, after correction)
    """
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    return (m / (1 - beta1**step)) / (v / (1 - beta2**step)).sqrt().add_(eps)


def projection(grad_2d, rank):
    """P: the top-`rank` singular vectors of G = U·Σ·Wᵀ on its shorter side.

        P = U[:, :r]  (m×r) when m < n;   P = W[:, :r]  (n×r) otherwise
    Each column's sign makes its largest-magnitude entry positive: SVD routines pick signs
    arbitrarily (CPU and GPU differ), and a flip at a refresh would negate the subspace moments.
    """
    u, _, vh = torch.linalg.svd(grad_2d, full_matrices=False)
    is_left = grad_2d.shape[0] < grad_2d.shape[1]
    p = u[:, :rank] if is_left else vh[:rank].T
    signs = torch.sign(p.gather(0, p.abs().argmax(dim=0, keepdim=True)))
    return (p * signs).contiguous()


def galore_delta(grad_2d, state, rank, beta1, beta2, eps):
    """The GaLore step direction for one matrix (Zhao et al. 2024, Algorithm 2), moments in place.

    Update rule (G = grad as an m×n matrix, M, V = Adam moments of the projected gradient,
    t = state["step"] from 1, r = rank, T = update_proj_gap, α = scale; the caller applies η
    and decay):
        P = projection(G, r)                         at t = 1, 1 + T, 1 + 2T, ...
        R = Pᵀ·G  (r×n) if m < n,  G·P  (m×r) otherwise
        N = adam_direction(M, V, R)
        Δ = α·P·N  if m < n,  α·N·Pᵀ otherwise
    Defaults: r = max(1, ⌊min(m, n)/4⌋), T = 200, α = 0.25.
    State: P (min(m, n)×r) and M, V (r×max(m, n) each).
    Sources differ: the paper keeps M and V when P changes (so does this), though they were
    accumulated in the old subspace.
    """
    step, is_left = state["step"], grad_2d.shape[0] < grad_2d.shape[1]
    if (step - 1) % DEFAULTS["update_proj_gap"] == 0:
        state["P"] = projection(grad_2d, rank)
    p = state["P"]
    projected = p.T @ grad_2d if is_left else grad_2d @ p
    if "M" not in state:
        state["M"] = torch.zeros_like(projected)
        state["V"] = torch.zeros_like(projected)
    n = adam_direction(state["M"], state["V"], projected, step, beta1, beta2, eps)
    return DEFAULTS["scale"] * (p @ n if is_left else n @ p.T)


class GaLoreAdamW(torch.optim.Optimizer):
    """AdamW with decoupled decay; groups with `galore=True` take GaLore's projected step.

    θ ← θ − η·λ·θ, then θ ← θ − η·Δ with Δ = galore_delta (matrices, conv filters as
    out×in·kh·kw) or Δ = adam_direction (every other role: plain AdamW).
    """

    def __init__(self, groups, lr, beta1, beta2, eps):
        super().__init__(groups, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=0.0))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, beta1, beta2, eps = group["lr"], group["beta1"], group["beta2"], group["eps"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                state["step"] = state.get("step", 0) + 1
                grad = param.grad.to(torch.promote_types(param.dtype, torch.float32))
                if group["galore"]:
                    grad_2d = grad.reshape(grad.shape[0], -1)
                    rank = max(1, int(DEFAULTS["rank_frac"] * min(grad_2d.shape)))
                    delta = galore_delta(grad_2d, state, rank, beta1, beta2, eps)
                else:
                    if "m" not in state:
                        state["m"], state["v"] = torch.zeros_like(grad), torch.zeros_like(grad)
                    delta = adam_direction(
                        state["m"], state["v"], grad, state["step"], beta1, beta2, eps
                    )
                param.mul_(1 - lr * group["weight_decay"])
                param.sub_(delta.view_as(param), alpha=lr)


def optimizer(params, hp, info):
    wd = hp["weight_decay"]
    matrices = params.with_roles(Role.MATRIX, Role.CONV)
    decayed = params.with_roles(Role.EMBEDDING, Role.HEAD)
    undecayed = params.with_roles(Role.NORM, Role.BIAS, Role.SCALAR)
    groups = [
        {"params": matrices, "galore": True, "weight_decay": wd},
        {"params": decayed, "galore": False, "weight_decay": wd},
        {"params": undecayed, "galore": False, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    return GaLoreAdamW(groups, hp["lr"], hp["beta1"], DEFAULTS["beta2"], DEFAULTS["eps"])
