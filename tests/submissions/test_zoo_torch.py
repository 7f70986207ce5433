"""The torch.optim reference submissions (and adamw-optax) follow the update rules their
READMEs state.

Equations: each reference is stepped through the harness (`run_reference`, float64) on the fixed
problem and compared with a NumPy implementation of its README's equations, written here from those
equations and driven by `Problem.grad` and the schedule's multipliers. State memory: the bytes the
harness counts (`optimizer_state_bytes`) equal the count each README states, on MEMORY_SHAPES.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from harness.contract import NO_DECAY_ROLES
from harness.submission import load_submission
from tests.submissions.zoo_check import (
    MEMORY_SHAPES,
    Problem,
    jax_x64,
    lr_multipliers,
    make_problem,
    max_abs_diff,
    run_reference,
)

State = dict[str, Any]
# One tensor's update: (θ, g, state, η = lr · schedule(t), λ = weight_decay or 0,
# t from 1, hp) -> θ.
Rule = Callable[[np.ndarray, np.ndarray, State, float, float, int, dict[str, Any]], np.ndarray]

FP32_BYTES = 4
STEP_TENSOR_BYTES = 4  # torch's per-parameter `step` counter: a float32 0-d tensor


def _decays(problem: Problem) -> list[bool]:
    return [role not in NO_DECAY_ROLES for role in problem.roles]


def _clip(grads: list[np.ndarray], max_norm: float) -> list[np.ndarray]:
    """The harness's global-norm clipping (torch.nn.utils.clip_grad_norm_)."""
    norm = math.sqrt(sum(float(np.sum(g**2)) for g in grads))
    return [g * min(1.0, max_norm / (norm + 1e-6)) for g in grads]


def _simulate(name: str, hp: dict[str, Any], rule: Rule, steps: int, problem: Problem) -> list:
    """θ after `steps` steps of `rule` applied tensor by tensor, as the harness drives it."""
    multipliers = lr_multipliers(name, hp)
    thetas = [x.copy() for x in problem.initial]
    states: list[State] = [{} for _ in thetas]
    for t in range(steps):
        grads = problem.grad(t, thetas)
        if "grad_clip" in hp:
            grads = _clip(grads, hp["grad_clip"])
        lr = hp["lr"] * multipliers[t]
        for i, (decays, g) in enumerate(zip(_decays(problem), grads, strict=True)):
            wd = hp["weight_decay"] if decays else 0.0
            thetas[i] = rule(thetas[i], g, states[i], lr, wd, t + 1, hp)
    return thetas


# --- The update rules, one per README ------------------------------------------------------------


def _sgd(theta, g, state, lr, wd, t, hp):
    g = g + wd * theta
    return theta - lr * g


def _heavy_ball(theta, g, state, lr, wd, t, hp, nesterov=False):
    mu = hp["momentum"]
    g = g + wd * theta
    state["v"] = g.copy() if t == 1 else mu * state["v"] + g
    return theta - lr * (g + mu * state["v"] if nesterov else state["v"])


def _nesterov(theta, g, state, lr, wd, t, hp):
    return _heavy_ball(theta, g, state, lr, wd, t, hp, nesterov=True)


def _adagrad(theta, g, state, lr, wd, t, hp):
    g = g + wd * theta
    state["G"] = state.get("G", np.full_like(theta, hp["initial_accumulator_value"])) + g**2
    return theta - lr * g / (np.sqrt(state["G"]) + 1e-10)


def _rmsprop(theta, g, state, lr, wd, t, hp):
    rho = hp["rho"]
    g = g + wd * theta
    state["E"] = rho * state.get("E", 0.0) + (1 - rho) * g**2
    return theta - lr * g / (np.sqrt(state["E"]) + 1e-8)


def _adadelta(theta, g, state, lr, wd, t, hp):
    rho, eps = hp["rho"], 1e-6
    g = g + wd * theta
    state["Eg"] = rho * state.get("Eg", 0.0) + (1 - rho) * g**2
    delta = np.sqrt(state.get("Ed", 0.0) + eps) / np.sqrt(state["Eg"] + eps) * g
    state["Ed"] = rho * state.get("Ed", 0.0) + (1 - rho) * delta**2
    return theta - lr * delta


def _moments(g, state, beta1, beta2=0.999):
    state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * g
    state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * g**2
    return state["m"], state["v"]


def _adam(theta, g, state, lr, wd, t, hp, decoupled=False):
    beta1, beta2 = hp["beta1"], 0.999
    if decoupled:
        theta = theta - lr * wd * theta
    else:
        g = g + wd * theta
    m, v = _moments(g, state, beta1)
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return theta - lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def _adamw(theta, g, state, lr, wd, t, hp):
    return _adam(theta, g, state, lr, wd, t, hp, decoupled=True)


def _amsgrad(theta, g, state, lr, wd, t, hp):
    beta1, beta2 = hp["beta1"], 0.999
    theta = theta - lr * wd * theta
    m, v = _moments(g, state, beta1)
    state["v_max"] = np.maximum(state.get("v_max", 0.0), v)
    return theta - lr * (m / (1 - beta1**t)) / (np.sqrt(state["v_max"] / (1 - beta2**t)) + 1e-8)


def _nadamw(theta, g, state, lr, wd, t, hp):
    beta1, beta2, psi = hp["beta1"], 0.999, 0.004
    theta = theta - lr * wd * theta
    mu = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    state["prod"] = state.get("prod", 1.0) * mu
    m, v = _moments(g, state, beta1)
    denom = np.sqrt(v / (1 - beta2**t)) + 1e-8
    theta = theta - lr * (1 - mu) / (1 - state["prod"]) * g / denom
    return theta - lr * mu_next / (1 - state["prod"] * mu_next) * m / denom


def _radam(theta, g, state, lr, wd, t, hp):
    beta1, beta2 = hp["beta1"], 0.999
    theta = theta - lr * wd * theta
    m, v = _moments(g, state, beta1)
    m_hat = m / (1 - beta1**t)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    if rho_t <= 5:
        return theta - lr * m_hat
    r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
    return theta - lr * r * m_hat * math.sqrt(1 - beta2**t) / (np.sqrt(v) + 1e-8)


def _rms(x):
    return math.sqrt(float(np.mean(x**2)))


def _adafactor(theta, g, state, lr, wd, t, hp):
    eps1, eps2, d = np.finfo(np.float64).eps, 1e-3, 1.0  # eps1: machine epsilon of θ's dtype
    beta = 1 - t ** hp["beta2_decay"]
    rho = min(lr, 1 / math.sqrt(t))
    alpha = max(eps2, _rms(theta)) * rho
    theta = theta - lr * wd * theta
    if theta.ndim >= 2:
        state["R"] = beta * state.get("R", 0.0) + (1 - beta) * np.mean(g**2, axis=-1, keepdims=True)
        state["C"] = beta * state.get("C", 0.0) + (1 - beta) * np.mean(g**2, axis=-2, keepdims=True)
        row_mean = np.mean(state["R"], axis=-2, keepdims=True)
        v = state["R"] * state["C"] / np.maximum(row_mean, eps1)
    else:
        state["V"] = beta * state.get("V", 0.0) + (1 - beta) * g**2
        v = state["V"]
    u = g / np.maximum(np.sqrt(v), eps1)
    return theta - alpha * u / max(1.0, _rms(u) / d)


def _lbfgs(problem: Problem, hp: dict[str, Any], steps: int) -> tuple[list[np.ndarray], int]:
    """L-BFGS, one iteration per step, no line search; returns θ and the number of stored pairs."""
    multipliers = lr_multipliers("lbfgs", hp)
    shapes = [x.shape for x in problem.initial]
    splits = np.cumsum([x.size for x in problem.initial])[:-1]
    mask = np.concatenate(
        [np.full(x.size, float(d)) for x, d in zip(problem.initial, _decays(problem), strict=True)]
    )
    theta = np.concatenate([x.ravel() for x in problem.initial])

    def grad(t: int, flat: np.ndarray) -> np.ndarray:
        parts = [p.reshape(s) for p, s in zip(np.split(flat, splits), shapes, strict=True)]
        g = np.concatenate([gi.ravel() for gi in problem.grad(t, parts)])
        return g + hp["weight_decay"] * mask * flat  # ∇ of ½·λ·‖θ_M‖²

    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    gamma, d, tau, g_prev, iteration = 1.0, None, 0.0, None, 0
    for t in range(steps):
        lr = hp["lr"] * multipliers[t]
        g = grad(t, theta)
        if np.max(np.abs(g)) <= 1e-7:
            continue
        iteration += 1
        if iteration == 1:
            d = -g
        else:
            y, s = g - g_prev, tau * d
            if y @ s > 1e-10:
                pairs = (pairs + [(s, y)])[-hp["history_size"] :]
                gamma = (y @ s) / (y @ y)
            q, alphas = -g, []
            for s_i, y_i in reversed(pairs):
                alphas.append((s_i @ q) / (y_i @ s_i))
                q = q - alphas[-1] * y_i
            r = gamma * q
            for (s_i, y_i), a_i in zip(pairs, reversed(alphas), strict=True):
                r = r + (a_i - (y_i @ r) / (y_i @ s_i)) * s_i
            d = r
        g_prev = g
        tau = lr * min(1.0, 1.0 / np.sum(np.abs(g))) if iteration == 1 else lr
        if g @ d <= -1e-9:
            theta = theta + tau * d
    thetas = [p.reshape(s) for p, s in zip(np.split(theta, splits), shapes, strict=True)]
    return thetas, len(pairs)


# --- Equations ----------------------------------------------------------------------------------

# (rule, hp chosen so every term matters: decay on, warmup 0.2 = 2 of 10 steps at multipliers
# ½ and 1)
EQUATIONS: dict[str, tuple[Rule, dict[str, Any]]] = {
    "sgd": (_sgd, {"lr": 0.1, "weight_decay": 0.05, "grad_clip": 1.0}),
    "sgd-momentum": (_heavy_ball, {"lr": 0.05, "weight_decay": 0.05, "momentum": 0.9}),
    "sgd-nesterov": (_nesterov, {"lr": 0.05, "weight_decay": 0.05, "momentum": 0.9}),
    "adagrad": (_adagrad, {"lr": 0.1, "weight_decay": 0.05, "initial_accumulator_value": 0.1}),
    "rmsprop": (_rmsprop, {"lr": 0.01, "weight_decay": 0.05, "rho": 0.9}),
    "adadelta": (_adadelta, {"lr": 2.0, "weight_decay": 0.05, "rho": 0.9}),
    "adam": (_adam, {"lr": 0.05, "weight_decay": 0.05, "beta1": 0.9}),
    "adamw": (_adamw, {"lr": 0.05, "weight_decay": 0.2, "beta1": 0.9}),
    "amsgrad": (_amsgrad, {"lr": 0.05, "weight_decay": 0.2, "beta1": 0.9}),
    "nadamw": (_nadamw, {"lr": 0.05, "weight_decay": 0.2, "beta1": 0.9}),
    "radam": (_radam, {"lr": 0.05, "weight_decay": 0.2, "beta1": 0.9}),
    # lr 0.8 makes ρ = min(η, 1/√t) take both branches (η·½ at t = 1, 1/√2 at t = 2)
    "adafactor": (_adafactor, {"lr": 0.8, "weight_decay": 0.05, "beta2_decay": -0.8}),
}
# Enough steps to reach every branch: RAdam rectifies from t = 6; AMSGrad's max must bind somewhere.
STEPS = {"radam": 8, "amsgrad": 10}


def _check(name: str, got: list[np.ndarray], want: list[np.ndarray], tol: float) -> None:
    initial = make_problem().initial
    assert max_abs_diff(got, want) <= tol, f"{name}: {max_abs_diff(got, want):.3e} from the README"
    assert max_abs_diff(want, list(initial)) > 1e-3, f"{name}: the parameters did not move"


@pytest.mark.parametrize("name", sorted(EQUATIONS))
def test_torch_reference_follows_its_equations(name: str) -> None:
    rule, hp = EQUATIONS[name]
    hp = {**hp, "warmup_frac": 0.2}
    steps = STEPS.get(name, 3)
    got = run_reference(name, hp, steps=steps).values()
    _check(name, got, _simulate(name, hp, rule, steps, make_problem()), tol=1e-6)


def test_amsgrad_max_binds_so_the_check_tells_it_from_adamw() -> None:
    _, hp = EQUATIONS["amsgrad"]
    hp = {**hp, "warmup_frac": 0.2}
    amsgrad = _simulate("amsgrad", hp, _amsgrad, STEPS["amsgrad"], make_problem())
    adamw = _simulate("amsgrad", hp, _adamw, STEPS["amsgrad"], make_problem())
    assert max_abs_diff(amsgrad, adamw) > 10 * 1e-6  # ten times the equations tolerance


def test_adamw_optax_follows_adamw_equations() -> None:
    """Through the DLPack bridge in float64 (JAX x64 on), against the same NumPy AdamW."""
    hp = {"lr": 0.05, "weight_decay": 0.2, "beta1": 0.9, "warmup_frac": 0.2}
    with jax_x64():
        got = run_reference("adamw-optax", hp, steps=3).values()
    _check("adamw-optax", got, _simulate("adamw-optax", hp, _adamw, 3, make_problem()), tol=1e-6)


def test_lbfgs_follows_its_equations() -> None:
    """5 steps with history 2: pairs are stored, used, and the oldest dropped."""
    hp = {"lr": 0.5, "weight_decay": 0.05, "history_size": 2, "warmup_frac": 0.2}
    got = run_reference("lbfgs", hp, steps=5).values()
    want, pairs = _lbfgs(make_problem(), hp, steps=5)
    assert pairs == 2
    _check("lbfgs", got, want, tol=1e-6)


# --- State memory -------------------------------------------------------------------------------

MEMORY_NUMEL = [math.prod(shape) for shape in MEMORY_SHAPES.values()]
N_PARAMS, N_TENSORS = sum(MEMORY_NUMEL), len(MEMORY_NUMEL)


def _factored_numel(shape: tuple[int, ...]) -> int:
    """Adafactor's statistics for one tensor: R and C over the last two dims, or a full V."""
    if len(shape) < 2:
        return shape[0]
    return math.prod(shape[:-2]) * (shape[-2] + shape[-1])


# The README's count, in bytes, for fp32 parameters.
STATE_BYTES: dict[str, int] = {
    "sgd": 0,
    "sgd-momentum": FP32_BYTES * N_PARAMS,
    "sgd-nesterov": FP32_BYTES * N_PARAMS,
    "adagrad": FP32_BYTES * N_PARAMS + STEP_TENSOR_BYTES * N_TENSORS,
    "rmsprop": FP32_BYTES * N_PARAMS + STEP_TENSOR_BYTES * N_TENSORS,
    "adadelta": 2 * FP32_BYTES * N_PARAMS + STEP_TENSOR_BYTES * N_TENSORS,
    "adam": 2 * FP32_BYTES * N_PARAMS + STEP_TENSOR_BYTES * N_TENSORS,
    "adamw": 2 * FP32_BYTES * N_PARAMS + STEP_TENSOR_BYTES * N_TENSORS,
    "amsgrad": 3 * FP32_BYTES * N_PARAMS + STEP_TENSOR_BYTES * N_TENSORS,
    # step and mu_product: two float32 0-d tensors per parameter
    "nadamw": 2 * FP32_BYTES * N_PARAMS + 2 * STEP_TENSOR_BYTES * N_TENSORS,
    "radam": 2 * FP32_BYTES * N_PARAMS + STEP_TENSOR_BYTES * N_TENSORS,
    "adamw-optax": 2 * FP32_BYTES * N_PARAMS + 4,  # one int32 count for the whole tree
    "adafactor": FP32_BYTES * sum(_factored_numel(s) for s in MEMORY_SHAPES.values())
    + STEP_TENSOR_BYTES * N_TENSORS,
}


def _centre_run(name: str):
    point = load_submission(name).search_space.center()
    return run_reference(
        name, point, steps=3, problem=make_problem(MEMORY_SHAPES), dtype=torch.float32
    )


@pytest.mark.parametrize("name", sorted(STATE_BYTES))
def test_state_memory_is_what_the_readme_says(name: str) -> None:
    assert _centre_run(name).state_bytes() == STATE_BYTES[name]


def test_adafactor_state_is_sublinear() -> None:
    adam = STATE_BYTES["adam"] - STEP_TENSOR_BYTES * N_TENSORS
    assert STATE_BYTES["adafactor"] < adam / 4


def test_lbfgs_state_memory_is_its_history() -> None:
    """d, the previous gradient and k pairs (s, y), each a flat fp32 vector of all parameters, plus
    0-d float32 tensors: 1/(yᵀs) and the two-loop coefficient a_i per pair, and γ once a pair
    exists. After the first step τ is the Python float lr, so it holds no tensor. k comes from the
    NumPy reference on the same problem (whether yᵀs > 1e-10 depends on the trajectory).
    """
    point = load_submission("lbfgs").search_space.center()
    _, pairs = _lbfgs(make_problem(MEMORY_SHAPES), point, steps=3)
    assert pairs >= 1  # otherwise this would not check the pair bookkeeping
    vectors = FP32_BYTES * N_PARAMS * (2 + 2 * pairs)
    scalars = STEP_TENSOR_BYTES * (2 * pairs + 1)
    assert _centre_run("lbfgs").state_bytes() == vectors + scalars
