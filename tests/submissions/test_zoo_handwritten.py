"""The hand-written references (adam-mini, adamw-8bit, sophia, galore) against their READMEs.

Each equations check steps the submission through the harness in float64 and compares it with a
NumPy implementation of the documented update rule; each memory check counts the state bytes the
README promises from the shapes alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from harness.contract import NO_DECAY_ROLES, Role
from harness.submission import load_submission
from tests.submissions.zoo_check import (
    MEMORY_SHAPES,
    SHAPES,
    Problem,
    lr_multipliers,
    make_problem,
    max_abs_diff,
    run_reference,
)

STEPS = 3
# warmup_frac 0.2 of the 10-step budget: multipliers 0.5, 1.0, then cosine, so the schedule matters.
HP = {"lr": 0.02, "weight_decay": 0.3, "beta1": 0.9, "warmup_frac": 0.2}
# A matrix of 4608 elements (2 full blocks of 2048 and a partial one) next to small tensors.
QUANTIZED_SHAPES = {**SHAPES, Role.MATRIX: (72, 64)}


def _check(name: str, want: list[np.ndarray], problem: Problem | None = None) -> None:
    got = run_reference(name, HP, steps=STEPS, problem=problem)
    assert max_abs_diff(got.values(), want) <= 1e-6
    assert max_abs_diff(got.values(), list(got.problem.initial)) > 1e-3  # it moved


def _setting(problem: Problem, name: str) -> tuple[list[np.ndarray], list[float]]:
    """The initial parameters, and η = lr · schedule(t) for each step."""
    thetas = [x.copy() for x in problem.initial]
    lrs = [HP["lr"] * s for s in lr_multipliers(name, HP)]
    return thetas, lrs


def _weight_decay(role: Role) -> float:
    return 0.0 if role in NO_DECAY_ROLES else HP["weight_decay"]


def _state_bytes(name: str, shapes: dict[Role, tuple[int, ...]] = MEMORY_SHAPES) -> int:
    problem = make_problem(shapes)
    return run_reference(name, HP, steps=STEPS, problem=problem, dtype=torch.float32).state_bytes()


def _adam_direction(
    m: np.ndarray,
    v: np.ndarray,
    g: np.ndarray,
    t: int,
    beta1: float,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> np.ndarray:
    """Adam's bias-corrected direction (ε outside the root); updates m and v in place."""
    m[:] = beta1 * m + (1 - beta1) * g
    v[:] = beta2 * v + (1 - beta2) * g**2
    return (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)


# adam-mini ----------------------------------------------------------------------------------------


def _mini_rows(x: np.ndarray, role: Role) -> np.ndarray:
    """README: a block per output row (matrix, conv, head), per token row (embedding), else one."""
    if role in (Role.MATRIX, Role.CONV, Role.HEAD):
        return x.reshape(x.shape[0], -1)
    if role is Role.EMBEDDING:
        return x.reshape(-1, x.shape[-1])
    return x.reshape(1, -1)


def test_adam_mini_equations() -> None:
    problem, beta1, beta2, eps = make_problem(), HP["beta1"], 0.999, 1e-8
    thetas, lrs = _setting(problem, "adam-mini")
    ms = [np.zeros_like(x) for x in thetas]
    vs = [np.zeros(_mini_rows(x, r).shape[0]) for x, r in zip(thetas, problem.roles, strict=True)]
    for t in range(STEPS):
        grads, lr = problem.grad(t, thetas), lrs[t]
        for i, role in enumerate(problem.roles):
            g = grads[i]
            thetas[i] = thetas[i] * (1 - lr * _weight_decay(role))
            ms[i] = beta1 * ms[i] + (1 - beta1) * g
            vs[i] = beta2 * vs[i] + (1 - beta2) * np.mean(_mini_rows(g, role) ** 2, axis=1)
            m_hat, v_hat = ms[i] / (1 - beta1 ** (t + 1)), vs[i] / (1 - beta2 ** (t + 1))
            step = _mini_rows(m_hat, role) / (np.sqrt(v_hat) + eps)[:, None]
            thetas[i] = thetas[i] - lr * step.reshape(thetas[i].shape)
    _check("adam-mini", thetas)


def test_adam_mini_state_memory() -> None:
    # m: one fp32 per element; v: one fp32 per block; the step count is a Python int (0 bytes).
    blocks = {
        Role.MATRIX: 64,
        Role.CONV: 16,
        Role.EMBEDDING: 40,
        Role.HEAD: 10,
        Role.NORM: 1,
        Role.BIAS: 1,
    }
    elements = sum(math.prod(s) for s in MEMORY_SHAPES.values())
    assert _state_bytes("adam-mini") == 4 * elements + 4 * sum(blocks.values())


# adamw-8bit ---------------------------------------------------------------------------------------


def _dynamic_map(signed: bool) -> np.ndarray:
    """README: Q = {0, 1} ∪ {±10^(i−6)·(0.1 + 0.9·(j + ½)/n_i)}, n_i = 2^i (signed), 2^(i+1)."""
    values = [0.0, 1.0]
    for i in range(7):
        n = 2**i if signed else 2 ** (i + 1)
        fractions = 0.1 + 0.9 * (np.arange(n) + 0.5) / n
        values += list(10.0 ** (i - 6) * fractions)
        values += list(-(10.0 ** (i - 6)) * fractions) if signed else []
    return np.sort(np.array(values))


def _quantize_roundtrip(x: np.ndarray, codebook: np.ndarray, block: int = 2048) -> np.ndarray:
    """x̂_i = s[b]·Q[argmin_j |x_i/s[b] − Q_j|],  s[b] = max_{i∈b} |x_i|."""
    flat = x.ravel()
    out = np.empty_like(flat)
    for start in range(0, flat.size, block):
        chunk = flat[start : start + block]
        scale = np.max(np.abs(chunk))
        normalized = chunk / scale if scale > 0 else chunk
        nearest = np.argmin(np.abs(normalized[:, None] - codebook[None, :]), axis=1)
        out[start : start + block] = scale * codebook[nearest]
    return out.reshape(x.shape)


def _adamw_8bit_reference(problem: Problem, is_quantized: bool) -> list[np.ndarray]:
    thetas, lrs = _setting(problem, "adamw-8bit")
    ms, vs = [np.zeros_like(x) for x in thetas], [np.zeros_like(x) for x in thetas]
    signed, unsigned = _dynamic_map(signed=True), _dynamic_map(signed=False)
    for t in range(STEPS):
        grads, lr = problem.grad(t, thetas), lrs[t]
        for i, role in enumerate(problem.roles):
            thetas[i] = thetas[i] * (1 - lr * _weight_decay(role))
            thetas[i] = thetas[i] - lr * _adam_direction(ms[i], vs[i], grads[i], t + 1, HP["beta1"])
            if is_quantized and thetas[i].size >= 4096:
                ms[i], vs[i] = (
                    _quantize_roundtrip(ms[i], signed),
                    _quantize_roundtrip(vs[i], unsigned),
                )
    return thetas


def test_dynamic_map_has_256_values() -> None:
    for signed in (True, False):
        codebook = _dynamic_map(signed)
        assert codebook.size == 256 and len(set(codebook)) == 256
        assert codebook.max() == 1.0 and (codebook.min() < 0) == signed


def test_adamw_8bit_equations() -> None:
    problem = make_problem(QUANTIZED_SHAPES)
    want = _adamw_8bit_reference(problem, is_quantized=True)
    _check("adamw-8bit", want, problem)
    # the quantization is part of the rule: without it the result is measurably different
    assert max_abs_diff(_adamw_8bit_reference(problem, is_quantized=False), want) > 1e-5


def test_adamw_8bit_state_memory() -> None:
    shapes = {**MEMORY_SHAPES, Role.MATRIX: (96, 48), Role.EMBEDDING: (100, 48)}
    expected = 0
    for shape in shapes.values():
        n = math.prod(shape)
        if n >= 4096:  # uint8 codes for m and v, and one fp32 scale each per block of 2048
            expected += 2 * n + 2 * 4 * math.ceil(n / 2048)
        else:  # fp32 m and v
            expected += 2 * 4 * n
    assert _state_bytes("adamw-8bit", shapes) == expected


# sophia -------------------------------------------------------------------------------------------


def _sophia_reference(problem: Problem, gamma: float, hessian_every: int) -> tuple[list, float]:
    """The documented rule; returns the parameters and the fraction of clipped updates."""
    beta1, beta2, eps = HP["beta1"], 0.99, 1e-12
    thetas, lrs = _setting(problem, "sophia")
    ms, hs = [np.zeros_like(x) for x in thetas], [np.zeros_like(x) for x in thetas]
    generator = torch.Generator().manual_seed(0)  # the submission's u, drawn the same way
    clipped = []
    for t in range(STEPS):
        grads, lr = problem.grad(t, thetas), lrs[t]
        if t % hessian_every == 0:
            us = [
                torch.randn(x.shape, generator=generator, dtype=torch.float64).numpy()
                for x in thetas
            ]
            hessians = problem.hessian_diag(t, thetas)
            hs = [
                beta2 * h + (1 - beta2) * u * (hd * u)
                for h, u, hd in zip(hs, us, hessians, strict=True)
            ]
        for i, role in enumerate(problem.roles):
            thetas[i] = thetas[i] * (1 - lr * _weight_decay(role))
            ms[i] = beta1 * ms[i] + (1 - beta1) * grads[i]
            ratio = ms[i] / np.maximum(gamma * hs[i], eps)
            clipped.append(np.abs(ratio) > 1)
            thetas[i] = thetas[i] - lr * np.clip(ratio, -1, 1)
    return thetas, float(np.mean(np.concatenate([c.ravel() for c in clipped])))


@pytest.mark.parametrize(("gamma", "hessian_every"), [(0.01, 10), (2.0, 2)])
def test_sophia_equations(
    gamma: float, hessian_every: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The defaults (one Hessian pass, at step 0), then a larger γ with a second pass at step 2,
    so that both the ratio and the clip decide some coordinates."""
    defaults = load_submission("sophia").module.DEFAULTS
    monkeypatch.setitem(defaults, "gamma", gamma)
    monkeypatch.setitem(defaults, "hessian_every", hessian_every)
    want, clipped_frac = _sophia_reference(make_problem(), gamma, hessian_every)
    _check("sophia", want)
    if gamma == 2.0:
        assert 0.1 < clipped_frac < 0.9


def test_sophia_state_memory() -> None:
    # m and h: two fp32 tensors per parameter; the generator is not a tensor and not counted.
    elements = sum(math.prod(s) for s in MEMORY_SHAPES.values())
    assert _state_bytes("sophia") == 2 * 4 * elements


# galore -------------------------------------------------------------------------------------------


def _galore_projection(g: np.ndarray, rank: int) -> np.ndarray:
    """README: top-r singular vectors on the shorter side; largest-magnitude entry positive."""
    u, _, vh = np.linalg.svd(g, full_matrices=False)
    p = u[:, :rank] if g.shape[0] < g.shape[1] else vh[:rank].T
    return p * np.sign(p[np.argmax(np.abs(p), axis=0), np.arange(rank)])


def _galore_reference(problem: Problem, rank_frac: float, gap: int) -> list[np.ndarray]:
    alpha, beta1 = 0.25, HP["beta1"]
    thetas, lrs = _setting(problem, "galore")
    states: list[dict[str, Any]] = [{} for _ in thetas]
    for t in range(STEPS):
        grads, lr = problem.grad(t, thetas), lrs[t]
        for i, role in enumerate(problem.roles):
            g, state = grads[i], states[i]
            if role in (Role.MATRIX, Role.CONV):
                g2 = g.reshape(g.shape[0], -1)
                is_left = g2.shape[0] < g2.shape[1]
                if t % gap == 0:
                    state["P"] = _galore_projection(g2, max(1, int(rank_frac * min(g2.shape))))
                p = state["P"]
                r = p.T @ g2 if is_left else g2 @ p
                state.setdefault("m", np.zeros_like(r))
                state.setdefault("v", np.zeros_like(r))
                n = _adam_direction(state["m"], state["v"], r, t + 1, beta1)
                delta = (alpha * (p @ n if is_left else n @ p.T)).reshape(g.shape)
            else:
                state.setdefault("m", np.zeros_like(g))
                state.setdefault("v", np.zeros_like(g))
                delta = _adam_direction(state["m"], state["v"], g, t + 1, beta1)
            thetas[i] = thetas[i] * (1 - lr * _weight_decay(role)) - lr * delta
    return thetas


@pytest.mark.parametrize(("rank_frac", "gap"), [(0.25, 200), (0.5, 2)])
def test_galore_equations(rank_frac: float, gap: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults (one projection, at step 0), then rank 2 with a refresh at step 2."""
    defaults = load_submission("galore").module.DEFAULTS
    monkeypatch.setitem(defaults, "rank_frac", rank_frac)
    monkeypatch.setitem(defaults, "update_proj_gap", gap)
    _check("galore", _galore_reference(make_problem(), rank_frac, gap))


def test_galore_state_memory() -> None:
    # Matrix (64, 48) is tall: r = 12, P is 48×12, M and V are 64×12. Conv (16, 8·3·3) is wide:
    # r = 4, P is 16×4, M and V are 4×72. Every other role: fp32 AdamW m and v. Steps: Python ints.
    galore = (48 * 12 + 2 * 64 * 12) + (16 * 4 + 2 * 4 * 72)
    rest = sum(
        math.prod(MEMORY_SHAPES[r]) for r in (Role.EMBEDDING, Role.HEAD, Role.NORM, Role.BIAS)
    )
    assert _state_bytes("galore") == 4 * (galore + 2 * rest)
