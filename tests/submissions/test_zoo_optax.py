"""The optax-backed references: each matches a NumPy transcription of its README's equations in
float64 (through the harness's own stepper and the DLPack bridge), and reports its exact state
bytes.

The NumPy references below are written from the equations in each submission's README, not from
optax; they share only the fixed problem (`zoo_check`) and the harness's schedule multipliers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from harness.contract import NO_DECAY_ROLES, Hyperparameters
from harness.schedules import warmup_cosine
from harness.submission import load_submission
from tests.submissions.zoo_check import (
    MAX_STEPS,
    MEMORY_SHAPES,
    Problem,
    info_for,
    jax_x64,
    lr_multipliers,
    make_problem,
    max_abs_diff,
    run_reference,
)

STEPS = 3
Arrays = list[np.ndarray]


def _decay(problem: Problem, weight_decay: float) -> list[float]:
    """λ per parameter: weight_decay on decayed roles, 0 on norm, bias and scalar."""
    return [0.0 if role in NO_DECAY_ROLES else weight_decay for role in problem.roles]


def _zeros(problem: Problem) -> Arrays:
    return [np.zeros_like(x) for x in problem.initial]


def _sign_step(
    problem: Problem,
    hp: dict[str, Any],
    s: list[float],
    beta_step: float,
    beta_state: float,
    steps: int = STEPS,
) -> Arrays:
    """Lion (README of lion); Signum is its β_step = β_state case (README of signum).

    c = β_step·m + (1 − β_step)·g;  u = −η·(sign(c) + λ·θ);  m ← β_state·m + (1 − β_state)·g;
    θ ← θ + s·u
    """
    theta, m = [x.copy() for x in problem.initial], _zeros(problem)
    lams = _decay(problem, hp["weight_decay"])
    for k in range(steps):
        g = problem.grad(k, theta)
        for i, lam in enumerate(lams):
            c = beta_step * m[i] + (1 - beta_step) * g[i]
            u = -hp["lr"] * (np.sign(c) + lam * theta[i])
            m[i] = beta_state * m[i] + (1 - beta_state) * g[i]
            theta[i] = theta[i] + s[k] * u
    return theta


def lion_reference(problem: Problem, hp: dict[str, Any], s: list[float]) -> Arrays:
    return _sign_step(problem, hp, s, beta_step=hp["beta1"], beta_state=0.99)


def signum_reference(problem: Problem, hp: dict[str, Any], s: list[float]) -> Arrays:
    return _sign_step(problem, hp, s, beta_step=hp["momentum"], beta_state=hp["momentum"])


def lamb_reference(problem: Problem, hp: dict[str, Any], s: list[float]) -> Arrays:
    """m, v Adam moments; r = m̂/(√v̂ + ε) + λ·θ; φ = ‖θ‖/‖r‖ (1 if either is 0); θ += s·(−η·φ·r)."""
    b1, b2, eps = hp["beta1"], 0.999, 1e-6
    theta, m, v = [x.copy() for x in problem.initial], _zeros(problem), _zeros(problem)
    lams = _decay(problem, hp["weight_decay"])
    for k in range(STEPS):
        t = k + 1
        g = problem.grad(k, theta)
        for i, lam in enumerate(lams):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            r = m_hat / (np.sqrt(v_hat) + eps) + lam * theta[i]
            theta_norm, r_norm = np.linalg.norm(theta[i]), np.linalg.norm(r)
            phi = theta_norm / r_norm if theta_norm > 0 and r_norm > 0 else 1.0
            theta[i] = theta[i] + s[k] * (-hp["lr"] * phi * r)
    return theta


def lars_reference(problem: Problem, hp: dict[str, Any], s: list[float]) -> Arrays:
    """d = g + λ·θ; φ = κ·‖θ‖/‖d‖ (1 if either is 0); on norm, bias, scalar d = g and φ = 1;
    v ← μ·v + φ·d; θ ← θ − s·η·v."""
    kappa, mu = 0.001, hp["momentum"]
    theta, v = [x.copy() for x in problem.initial], _zeros(problem)
    lams = _decay(problem, hp["weight_decay"])
    for k in range(STEPS):
        g = problem.grad(k, theta)
        for i, lam in enumerate(lams):
            d = g[i] + lam * theta[i]
            theta_norm, d_norm = np.linalg.norm(theta[i]), np.linalg.norm(d)
            adapted = problem.roles[i] not in NO_DECAY_ROLES and theta_norm > 0 and d_norm > 0
            phi = kappa * theta_norm / d_norm if adapted else 1.0
            v[i] = mu * v[i] + phi * d
            theta[i] = theta[i] - s[k] * hp["lr"] * v[i]
    return theta


def adopt_reference(problem: Problem, hp: dict[str, Any], s: list[float]) -> Arrays:
    """k = 0: v = g², m = 0.  k ≥ 1: m ← β1·m + (1 − β1)·clip(g/max(√v, ε), ±k^¼) with the
    previous v, then v ← β2·v + (1 − β2)·g².  θ += s·(−η·(m + λ·θ))."""
    b1, b2, eps = hp["beta1"], 0.9999, 1e-6
    theta, m, v = [x.copy() for x in problem.initial], _zeros(problem), _zeros(problem)
    lams = _decay(problem, hp["weight_decay"])
    for k in range(STEPS):
        g = problem.grad(k, theta)
        for i, lam in enumerate(lams):
            if k == 0:
                v[i] = g[i] ** 2
            else:
                bound = k**0.25
                normalized = np.clip(g[i] / np.maximum(np.sqrt(v[i]), eps), -bound, bound)
                m[i] = b1 * m[i] + (1 - b1) * normalized
                v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            theta[i] = theta[i] + s[k] * (-hp["lr"] * (m[i] + lam * theta[i]))
    return theta


def ademamix_reference(problem: Problem, hp: dict[str, Any], s: list[float]) -> Arrays:
    """α_k = α·min(1, k/T); β3_k = exp(ln β1·ln β3 / ((1 − a)·ln β3 + a·ln β1)), a = min(1, k/T);
    m1, v Adam moments (bias-corrected), m2 ← β3_k·m2 + (1 − β3_k)·g (not);
    θ += s·(−η·((m̂1 + α_k·m2)/(√v̂ + ε) + λ·θ))."""
    b1, b2, b3, alpha, eps, total = 0.9, 0.999, hp["beta3"], 5.0, 1e-8, MAX_STEPS
    theta = [x.copy() for x in problem.initial]
    m1, m2, v = _zeros(problem), _zeros(problem), _zeros(problem)
    lams = _decay(problem, hp["weight_decay"])
    for k in range(STEPS):
        t, a = k + 1, min(1.0, k / total)
        alpha_k = alpha * a
        b3_k = math.exp(math.log(b1) * math.log(b3) / ((1 - a) * math.log(b3) + a * math.log(b1)))
        g = problem.grad(k, theta)
        for i, lam in enumerate(lams):
            m1[i] = b1 * m1[i] + (1 - b1) * g[i]
            m2[i] = b3_k * m2[i] + (1 - b3_k) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m1_hat, v_hat = m1[i] / (1 - b1**t), v[i] / (1 - b2**t)
            u = -hp["lr"] * ((m1_hat + alpha_k * m2[i]) / (np.sqrt(v_hat) + eps) + lam * theta[i])
            theta[i] = theta[i] + s[k] * u
    return theta


def prodigy_reference(
    problem: Problem,
    hp: dict[str, Any],
    s: list[float],
    d0: float,
    d_trace: list[float] | None = None,
) -> Arrays:
    """Prodigy as its README states it, safeguarded, with lr_k = lr·(the harness's warmup_cosine)
    inside and the bridge's multiplier s (all 1)."""
    b1, b2, eps = hp["beta1"], 0.999, 1e-8
    b3 = math.sqrt(b2)
    inner = warmup_cosine(Hyperparameters(hp), info_for(problem))
    theta0 = [x.copy() for x in problem.initial]
    theta, m, v, r = [x.copy() for x in theta0], _zeros(problem), _zeros(problem), _zeros(problem)
    lams = _decay(problem, hp["weight_decay"])
    d, numerator = d0, 0.0
    for k in range(STEPS):
        t, lr_k = k + 1, hp["lr"] * inner(k)
        eta = d * lr_k * math.sqrt(1 - b2**t) / (1 - b1**t)
        g = problem.grad(k, theta)
        inner_product = sum(
            float(np.sum(gi * (a - b))) for gi, a, b in zip(g, theta0, theta, strict=True)
        )
        numerator = b3 * numerator + (d / d0) * eta * inner_product
        for i in range(len(theta)):
            m[i] = b1 * m[i] + (1 - b1) * d * g[i]
            v[i] = b2 * v[i] + (1 - b2) * d**2 * g[i] ** 2
            r[i] = b3 * r[i] + (d**2 / d0) * g[i]
        d_next = max(d, numerator / sum(float(np.sum(np.abs(ri))) for ri in r))
        for i, lam in enumerate(lams):
            u = -eta * (m[i] / (np.sqrt(v[i]) + d_next * eps) + lam * theta[i])
            theta[i] = theta[i] + s[k] * u
        d = d_next
        if d_trace is not None:
            d_trace.append(d)
    return theta


def schedule_free_reference(
    problem: Problem, hp: dict[str, Any], steps: int
) -> tuple[Arrays, Arrays]:
    """Schedule-Free AdamW (README): returns (y, x) after `steps` steps; gradients at y."""
    b1, b2, eps, power = hp["beta1"], 0.999, 1e-8, 2.0
    warmup_steps = round(hp["warmup_frac"] * MAX_STEPS)
    y = [a.copy() for a in problem.initial]
    z, x, v = [a.copy() for a in y], [a.copy() for a in y], _zeros(problem)
    lams = _decay(problem, hp["weight_decay"])
    gamma_max, weight_sum = 0.0, 0.0
    for k in range(steps):
        t = k + 1
        gamma = hp["lr"] * min(1.0, t / max(warmup_steps, 1))
        gamma_max = max(gamma_max, gamma)
        weight_sum += gamma_max**power
        c = gamma_max**power / weight_sum
        g = problem.grad(k, y)
        for i, lam in enumerate(lams):
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            v_hat = v[i] / (1 - b2**t)
            z[i] = z[i] - gamma * (g[i] / (np.sqrt(v_hat) + eps) + lam * y[i])
            x[i] = (1 - c) * x[i] + c * z[i]
            y[i] = b1 * x[i] + (1 - b1) * z[i]
    return y, x


Reference = Callable[[Problem, dict[str, Any], list[float]], Arrays]
# Points chosen so every term shows at the 1e-6 tolerance: non-zero decay, a warmup or a cosine
# that changes the multipliers, rates large enough to move θ by more than 1e-3 in three steps.
EQUATION_CASES: list[tuple[str, dict[str, Any], Reference]] = [
    ("lion", {"lr": 5e-4, "weight_decay": 0.2, "beta1": 0.95, "warmup_frac": 0.0}, lion_reference),
    ("lamb", {"lr": 5e-3, "weight_decay": 0.02, "beta1": 0.9, "warmup_frac": 0.3}, lamb_reference),
    ("lars", {"lr": 0.1, "weight_decay": 0.5, "momentum": 0.9, "warmup_frac": 0.0}, lars_reference),
    (
        "signum",
        {"lr": 5e-4, "weight_decay": 0.2, "momentum": 0.9, "warmup_frac": 0.0},
        signum_reference,
    ),
    (
        "signum",
        {"lr": 5e-4, "weight_decay": 0.2, "momentum": 0.0, "warmup_frac": 0.0},
        signum_reference,
    ),
    (
        "adopt",
        {"lr": 1e-2, "weight_decay": 0.02, "beta1": 0.9, "warmup_frac": 0.0},
        adopt_reference,
    ),
    (
        "ademamix",
        {"lr": 5e-3, "weight_decay": 0.2, "beta3": 0.999, "warmup_frac": 0.0},
        ademamix_reference,
    ),
]


def _assert_matches(got: Arrays, want: Arrays, problem: Problem) -> None:
    diff = max_abs_diff(got, want)
    moved = max_abs_diff(want, list(problem.initial))
    assert moved > 1e-3, f"the check is vacuous: θ moved only {moved:.2e}"
    assert diff <= 1e-6, f"max |optax − NumPy| = {diff:.2e} (θ moved {moved:.2e})"


@pytest.mark.parametrize(
    ("name", "hp", "reference"),
    EQUATION_CASES,
    ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(EQUATION_CASES)],
)
def test_equations_match_numpy(name: str, hp: dict[str, Any], reference: Reference) -> None:
    with jax_x64():
        run = run_reference(name, hp, steps=STEPS)
    s = lr_multipliers(name, hp)
    want = reference(run.problem, hp, s)
    _assert_matches(run.values(), want, run.problem)
    undecayed = reference(run.problem, {**hp, "weight_decay": 0.0}, s)
    assert max_abs_diff(want, undecayed) > 1e-5  # the decay term is visible at the tolerance


def test_prodigy_equations_match_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """With d_0 = 1e-6 nothing moves in three steps; d_0 = 1e-2 lets the d estimate grow."""
    hp = {"lr": 5.0, "weight_decay": 0.02, "beta1": 0.9, "warmup_frac": 0.0}
    d0 = 1e-2
    monkeypatch.setitem(load_submission("prodigy").module.DEFAULTS, "d0", d0)
    with jax_x64():
        run = run_reference("prodigy", hp, steps=STEPS)
    s = lr_multipliers("prodigy", hp)
    assert s == [1.0] * MAX_STEPS  # the schedule runs inside optax
    d_trace: list[float] = []
    want = prodigy_reference(run.problem, hp, s, d0, d_trace)
    _assert_matches(run.values(), want, run.problem)
    assert d_trace[-1] > d0  # the distance estimate grew, so its equations were exercised
    undecayed = prodigy_reference(run.problem, {**hp, "weight_decay": 0.0}, s, d0)
    assert max_abs_diff(want, undecayed) > 1e-5


def test_schedule_free_equations_and_eval_swap_match_numpy() -> None:
    """Training point y after 3 steps, x after prepare_for_eval, y again after one more update."""
    hp = {"lr": 5e-3, "weight_decay": 0.02, "beta1": 0.9, "warmup_frac": 0.3}
    with jax_x64():
        run = run_reference("schedule-free-adamw", hp, steps=STEPS)
        y3, x3 = schedule_free_reference(run.problem, hp, STEPS)
        _assert_matches(run.values(), y3, run.problem)
        run.stepper.prepare_for_eval()
        run.stepper.prepare_for_eval()  # a second call must not swap again
        _assert_matches(run.values(), x3, run.problem)
        assert max_abs_diff(x3, y3) > 1e-4  # x and y differ, so the swap is visible
        run.stepper.step(STEPS, STEPS)  # swaps back to y, then steps from there
        y4, _ = schedule_free_reference(run.problem, hp, STEPS + 1)
        _assert_matches(run.values(), y4, run.problem)


def _numels(shapes: dict[Any, tuple[int, ...]]) -> int:
    return sum(math.prod(shape) for shape in shapes.values())


F32, I32 = 4, 4
N = _numels(MEMORY_SHAPES)  # parameters, all float32 here
# Exact optax state bytes: per-parameter tensors in θ's dtype, plus scalar leaves (int32 counts
# that optax keeps even where the rule does not use them, float scalars in θ's dtype).
STATE_BYTES = {
    "lion": F32 * N + I32,  # m; scale_by_lion's count
    "lamb": 2 * F32 * N + I32,  # m, v; scale_by_adam's count
    "lars": F32 * N,  # the momentum trace; no count
    "signum": F32 * N + I32,  # m; ema's count
    "adopt": 2 * F32 * N + I32,  # m, v; scale_by_adopt's count
    "ademamix": 3 * F32 * N + 2 * I32,  # m1, m2, v; count and count_m2
    "prodigy": 4 * F32 * N + 2 * F32 + I32,  # m, v, r, θ0; d and N; count
    # z, v; β1, weight sum, γmax; schedule-free's, scale_by_rms's and the warmup's counts
    "schedule-free-adamw": 2 * F32 * N + 3 * F32 + 3 * I32,
}


@pytest.mark.parametrize("name", sorted(STATE_BYTES))
def test_state_bytes_are_exact(name: str) -> None:
    hp = load_submission(name).search_space.center()
    problem = make_problem(MEMORY_SHAPES)
    run = run_reference(name, hp, steps=STEPS, problem=problem, dtype=torch.float32)
    assert run.state_bytes() == STATE_BYTES[name]
