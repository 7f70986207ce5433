"""Sophia-H (Liu et al. 2023), a full-control submission: Hutchinson Hessian passes; see README.md."""

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

DEFAULTS = {"beta2": 0.99, "gamma": 0.01, "eps": 1e-12, "hessian_every": 10, "seed": 0}


def sophia_update(param, grad, m, h, lr, beta1, gamma, eps, weight_decay):
    """One Sophia step for one tensor, in place (Liu et al. 2023, Algorithm 3).

    Update rule (θ = param, g = grad, m = exp_avg, h = Hessian-diagonal EMA, η = lr,
    λ = weight_decay; clip(z, 1) = max(−1, min(z, 1)) per element):
        θ ← θ − η·λ·θ
        m ← β1·m + (1 − β1)·g
        θ ← θ − η·clip(m / max(γ·h, ε), 1)
    Defaults: β1 = 0.965, γ = 0.01, ε = 1e-12.  State: m and h (two tensors like θ).
    Sources differ: the official SophiaG code writes γ as ρ·batch_tokens for its Gauss-Newton
    estimate of a summed loss; Hutchinson on the mean loss needs no batch factor.
    """
    param.mul_(1 - lr * weight_decay)
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    ratio = m / (gamma * h).clamp_(min=eps)
    param.sub_(ratio.clamp_(-1.0, 1.0), alpha=lr)


def hutchinson_update(h, u, hessian_u, beta2):
    """The Hessian-diagonal EMA, every k steps, in place (Hutchinson's estimator).

        ĥ = u ⊙ (H·u),  u ~ N(0, I)
        h ← β2·h + (1 − β2)·ĥ
    Defaults: β2 = 0.99, k = 10 (at steps 0, k, 2k, ...).
    """
    h.mul_(beta2).add_(u * hessian_u, alpha=1 - beta2)


class Submission:
    """Sophia-H: the gradient pass every step, and every k-th step one extra forward plus a
    double backward (H·u = ∂(g·u)/∂θ) through `ctx.loss`, so the harness times both."""

    def __init__(self, params, hp, info):
        self.params = list(params.params)
        self.weight_decays = [hp["weight_decay"] if d else 0.0 for d in params.decay_mask()]
        self.lr, self.beta1 = hp["lr"], hp["beta1"]
        dtypes = [torch.promote_types(p.dtype, torch.float32) for p in self.params]
        self.m = [torch.zeros_like(p, dtype=d) for p, d in zip(self.params, dtypes, strict=True)]
        self.h = [torch.zeros_like(p, dtype=d) for p, d in zip(self.params, dtypes, strict=True)]
        # u is drawn from a generator of its own, so the same steps see the same u on every rerun
        self.generator = torch.Generator(device=self.params[0].device)
        self.generator.manual_seed(DEFAULTS["seed"])

    def update(self, batch, step, ctx):
        loss = ctx.forward_backward(batch)
        if step % DEFAULTS["hessian_every"] == 0:
            self._estimate_hessian(batch, ctx)
        lr = self.lr * ctx.lr_multiplier(step)
        gamma, eps = DEFAULTS["gamma"], DEFAULTS["eps"]
        with torch.no_grad():
            for param, m, h, wd in zip(
                self.params, self.m, self.h, self.weight_decays, strict=True
            ):
                if param.grad is not None:
                    grad = param.grad.to(m.dtype)
                    sophia_update(param, grad, m, h, lr, self.beta1, gamma, eps, wd)
        return loss

    def _estimate_hessian(self, batch, ctx):
        us = [
            torch.randn(p.shape, generator=self.generator, device=p.device, dtype=p.dtype)
            for p in self.params
        ]
        with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no double backward
            grads = torch.autograd.grad(
                ctx.loss(batch), self.params, create_graph=True, allow_unused=True
            )
            pairs = [
                (g, u) for g, u in zip(grads, us, strict=True) if g is not None and g.requires_grad
            ]
            hessian_us = (
                torch.autograd.grad(
                    [g for g, _ in pairs],
                    self.params,
                    grad_outputs=[u for _, u in pairs],
                    allow_unused=True,
                )
                if pairs
                else [None] * len(us)
            )
        with torch.no_grad():
            for h, u, hessian_u in zip(self.h, us, hessian_us, strict=True):
                hutchinson_update(h, u, 0.0 if hessian_u is None else hessian_u, DEFAULTS["beta2"])

    def state_dict(self):
        return {"m": self.m, "h": self.h, "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        for mine, saved in zip(self.m + self.h, state["m"] + state["h"], strict=True):
            mine.copy_(saved)
        self.generator.set_state(state["generator"])
