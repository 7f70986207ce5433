"""The matrix optimizers (muon, shampoo, soap) against NumPy implementations of their READMEs.

Each check steps the reference submission through the harness on the fixed problem of `zoo_check`
in float64 and replays the documented equations in NumPy, driven by the same gradients
(`Problem.grad`) and schedule multipliers. A conv filter (out, in, kh, kw) is the matrix
out × in·kh·kw throughout. The state-memory checks count bytes in float32 from MEMORY_SHAPES.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from harness.contract import NO_DECAY_ROLES, Role
from harness.submission import load_submission
from tests.submissions.zoo_check import (
    MEMORY_SHAPES,
    Problem,
    lr_multipliers,
    make_problem,
    max_abs_diff,
    run_reference,
)

MUON_ROLES = (Role.MATRIX, Role.CONV)
PRECONDITIONED_ROLES = (Role.MATRIX, Role.CONV, Role.EMBEDDING, Role.HEAD)
FLOAT32_BYTES = 4
STEPS = 3

# One update rule on one parameter: (θ, g, η, λ, state, t from 1) -> new θ; state is mutated.
Rule = Callable[[np.ndarray, np.ndarray, float, float, dict[str, Any], int], np.ndarray]


def replay(
    problem: Problem,
    hp: dict[str, Any],
    name: str,
    rule_for: Callable[[Role], Rule],
    steps: int = STEPS,
) -> list[np.ndarray]:
    """θ after `steps` steps of each parameter's rule, η = lr·schedule(t), λ masked by role."""
    multipliers = lr_multipliers(name, hp)
    thetas = [v.copy() for v in problem.initial]
    states: list[dict[str, Any]] = [{} for _ in thetas]
    for step in range(steps):
        grads = problem.grad(step, thetas)
        eta = hp["lr"] * multipliers[step]
        for i, role in enumerate(problem.roles):
            decay = 0.0 if role in NO_DECAY_ROLES else hp["weight_decay"]
            thetas[i] = rule_for(role)(thetas[i], grads[i], eta, decay, states[i], step + 1)
    return thetas


def as_matrix(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], -1)


def adam(beta1: float, beta2: float, eps: float, lr_ratio: float = 1.0) -> Rule:
    """AdamW: θ ← θ − η·λ·θ; θ ← θ − η·m̂/(√v̂ + ε), at learning rate lr_ratio·η."""

    def rule(theta, g, eta, decay, state, t):
        eta = lr_ratio * eta
        m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * g
        v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * g**2
        theta = theta - eta * decay * theta
        return theta - eta * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)

    return rule


def check_against_numpy(
    name: str, hp: dict[str, Any], rule_for: Callable[[Role], Rule], steps: int = STEPS
) -> None:
    problem = make_problem()
    got = run_reference(name, hp, steps=steps).values()
    want = replay(problem, hp, name, rule_for, steps)
    assert max_abs_diff(got, want) <= 1e-6
    assert max_abs_diff(got, list(problem.initial)) > 1e-3  # the parameters moved


def state_bytes(name: str, hp: dict[str, Any]) -> int:
    problem = make_problem(MEMORY_SHAPES)
    return run_reference(name, hp, steps=STEPS, problem=problem, dtype=torch.float32).state_bytes()


def matrix_sides(shape: tuple[int, ...]) -> tuple[int, int]:
    return shape[0], int(np.prod(shape[1:]))


@pytest.fixture
def set_defaults(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Overrides constants of a submission's DEFAULTS (not hyperparameters) for one test."""

    def set_for(name: str, **values: Any) -> None:
        defaults = load_submission(name).module.DEFAULTS  # the module run_reference will load
        for key, value in values.items():
            monkeypatch.setitem(defaults, key, value)

    return set_for


# -- muon ---------------------------------------------------------------------------------------

MUON_HP = {"lr": 0.05, "weight_decay": 0.02, "momentum": 0.9, "warmup_frac": 0.3}


def newton_schulz(m: np.ndarray) -> np.ndarray:
    """X₀ = M/(‖M‖_F + 1e-7); X ← a·X + (b·A + c·A²)·X A = X·Xᵀ, 5 times, on Mᵀ if tall."""
    a, b, c = 3.4445, -4.7750, 2.0315
    is_tall = m.shape[0] > m.shape[1]
    x = m.T if is_tall else m
    x = x / (np.linalg.norm(x) + 1e-7)
    for _ in range(5):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if is_tall else x


def muon(mu: float) -> Rule:
    """B ← μ·B + g; M = g + μ·B; θ ← θ − η·λ·θ; θ ← θ − η·max(1, rows/cols)^½·NS(M)."""

    def rule(theta, g, eta, decay, state, t):
        b = state["b"] = mu * state.get("b", 0.0) + g
        rows, cols = matrix_sides(theta.shape)
        ortho = newton_schulz(as_matrix(g + mu * b)).reshape(theta.shape)
        theta = theta - eta * decay * theta
        return theta - eta * max(1.0, rows / cols) ** 0.5 * ortho

    return rule


def test_muon_matches_its_equations() -> None:
    aux_adamw = adam(0.9, 0.95, 1e-8, lr_ratio=0.15)
    muon_rule = muon(MUON_HP["momentum"])
    check_against_numpy("muon", MUON_HP, lambda r: muon_rule if r in MUON_ROLES else aux_adamw)


def test_muon_state_is_one_momentum_matrix_plus_adamw_on_the_rest() -> None:
    muon_floats = sum(np.prod(MEMORY_SHAPES[r]) for r in MUON_ROLES)
    others = [s for r, s in MEMORY_SHAPES.items() if r not in MUON_ROLES]
    # AdamW: m and v per parameter, plus torch's float32 `step` tensor per parameter
    adamw_bytes = sum(2 * FLOAT32_BYTES * np.prod(s) + 4 for s in others)
    assert state_bytes("muon", MUON_HP) == FLOAT32_BYTES * muon_floats + adamw_bytes


# -- shampoo ------------------------------------------------------------------------------------

SHAMPOO_HP = {"lr": 0.01, "weight_decay": 0.02, "beta1": 0.9, "warmup_frac": 0.3}
SHAMPOO_BETA2, SHAMPOO_EPS, GRAFT_EPS = 0.95, 1e-12, 1e-8


def inverse_fourth_root(stat: np.ndarray, eps: float) -> np.ndarray:
    """(C + ε·I)^(−1/4) by eigendecomposition, eigenvalues clamped at 0; a vector is a diagonal."""
    if stat.ndim == 1:
        return (np.maximum(stat, 0) + eps) ** -0.25
    eigenvalues, q = np.linalg.eigh(stat)
    return (q * (np.maximum(eigenvalues, 0) + eps) ** -0.25) @ q.T


def side_product(root: np.ndarray, x: np.ndarray, left: bool) -> np.ndarray:
    if root.ndim == 1:
        return root[:, None] * x if left else x * root[None, :]
    return root @ x if left else x @ root


def shampoo(
    beta1: float, frequency: int, max_dim: int, eps: float, is_preconditioned: bool
) -> Rule:
    """Grafted Shampoo on the momentum (shampoo/README.md); Adam alone when not preconditioned."""
    beta2 = SHAMPOO_BETA2

    def rule(theta, g, eta, decay, state, t):
        m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * g
        v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * g**2
        direction = (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + GRAFT_EPS)
        if is_preconditioned:
            gm = as_matrix(g)
            rows, cols = gm.shape
            left_gram = (gm**2).sum(1) if rows > max_dim else gm @ gm.T
            right_gram = (gm**2).sum(0) if cols > max_dim else gm.T @ gm
            state["L"] = beta2 * state.get("L", 0.0) + (1 - beta2) * left_gram
            state["R"] = beta2 * state.get("R", 0.0) + (1 - beta2) * right_gram
            if t % frequency == 0:
                state["PL"] = inverse_fourth_root(state["L"], eps)
                state["PR"] = inverse_fourth_root(state["R"], eps)
            if t >= frequency:
                s = side_product(state["PR"], side_product(state["PL"], as_matrix(m), True), False)
                s = s.reshape(theta.shape)
                direction = np.linalg.norm(direction) / np.linalg.norm(s) * s
        theta = theta - eta * decay * theta
        return theta - eta * direction

    return rule


@pytest.mark.parametrize(
    ("frequency", "max_dim", "eps"),
    [
        (1, 8192, SHAMPOO_EPS),  # roots every step, all sides full
        (2, 5, SHAMPOO_EPS),  # Adam alone at step 1, roots at 2, stale at 3; diagonal sides
        (2, 8192, 0.1),  # an ε that matters (1e-12 is lost in O(1) statistics)
    ],
)
def test_shampoo_matches_its_equations(
    set_defaults, frequency: int, max_dim: int, eps: float
) -> None:
    set_defaults(
        "shampoo", precondition_frequency=frequency, max_preconditioner_dim=max_dim, eps=eps
    )
    beta1 = SHAMPOO_HP["beta1"]
    rules = {pre: shampoo(beta1, frequency, max_dim, eps, pre) for pre in (True, False)}
    check_against_numpy("shampoo", SHAMPOO_HP, lambda r: rules[r in PRECONDITIONED_ROLES])


@pytest.mark.parametrize("max_dim", [8192, 50])
def test_shampoo_state_memory(set_defaults, max_dim: int) -> None:
    """m, v (momentum; grafting's second moment) on every tensor; L, R (statistics) and P_L, P_R
    (cached roots, reused between refreshes) on preconditioned ones: d² floats a side, or d when
    d > max_preconditioner_dim. The step count is a Python int (no tensor bytes)."""
    set_defaults("shampoo", max_preconditioner_dim=max_dim)
    floats = 0
    for role, shape in MEMORY_SHAPES.items():
        floats += 2 * np.prod(shape)
        if role in PRECONDITIONED_ROLES:
            floats += sum(2 * (d if d > max_dim else d * d) for d in matrix_sides(shape))
    assert state_bytes("shampoo", SHAMPOO_HP) == FLOAT32_BYTES * floats


# -- soap ---------------------------------------------------------------------------------------

SOAP_HP = {"lr": 0.01, "weight_decay": 0.02, "beta1": 0.9, "warmup_frac": 0.3}
SOAP_BETA2, SOAP_SHAMPOO_BETA, SOAP_EPS = 0.95, 0.95, 1e-8


def soap(beta1: float, frequency: int, max_dim: int, eps: float, is_rotated: bool) -> Rule:
    """Adam in the eigenbasis of L, R (see soap/README.md); Adam when not rotated."""
    beta2, beta_s = SOAP_BETA2, SOAP_SHAMPOO_BETA

    def rule(theta, g, eta, decay, state, t):
        gm = as_matrix(g) if is_rotated else g
        rows, cols = gm.shape if is_rotated else (0, 0)
        has_left, has_right = is_rotated and rows <= max_dim, is_rotated and cols <= max_dim
        if has_left:
            state["L"] = beta_s * state.get("L", 0.0) + (1 - beta_s) * gm @ gm.T
        if has_right:
            state["R"] = beta_s * state.get("R", 0.0) + (1 - beta_s) * gm.T @ gm
        if t == 1 or t % frequency == 0:
            state["QL"] = np.linalg.eigh(state["L"])[1] if has_left else np.eye(rows)
            state["QR"] = np.linalg.eigh(state["R"])[1] if has_right else np.eye(cols)
        ql, qr = state.get("QL"), state.get("QR")
        into = (lambda x: ql.T @ x @ qr) if is_rotated else (lambda x: x)
        back = (lambda x: ql @ x @ qr.T) if is_rotated else (lambda x: x)
        m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * gm
        v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * into(gm) ** 2
        rotated = (into(m) / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        theta = theta - eta * decay * theta
        return theta - eta * back(rotated).reshape(theta.shape)

    return rule


# Bases from rank-deficient statistics have degenerate null spaces, where the eigenvectors are
# arbitrary: neither case lets such a basis act on a later gradient.
@pytest.mark.parametrize(
    ("frequency", "max_dim", "eps"),
    [
        # A refresh every step, all sides rotated. ε = 1e-6, not 1e-8: at step 1 the rotated
        # gradient is diagonal (Q_L, Q_R are G's singular vectors), so off the diagonal m' and √v
        # are both rounding noise (~1e-16) and their ratio is ~1e-16/ε; one small coordinate of
        # step 2 amplifies that difference ~1e5 on this problem.
        (1, 10000, 1e-6),
        (2, 5, SOAP_EPS),  # bases from steps 1 and 2, stale at 3; one side unrotated on two roles
    ],
)
def test_soap_matches_its_equations(set_defaults, frequency: int, max_dim: int, eps: float) -> None:
    set_defaults("soap", precondition_frequency=frequency, max_preconditioner_dim=max_dim, eps=eps)
    beta1 = SOAP_HP["beta1"]
    rules = {rot: soap(beta1, frequency, max_dim, eps, rot) for rot in (True, False)}
    check_against_numpy("soap", SOAP_HP, lambda r: rules[r in PRECONDITIONED_ROLES])


@pytest.mark.parametrize("max_dim", [10000, 50])
def test_soap_state_memory(set_defaults, max_dim: int) -> None:
    """m, v on every tensor; L and Q_L (d² each) on a rotated tensor's side of length
    d <= max_preconditioner_dim, nothing on a longer side. The step count is a Python int."""
    set_defaults("soap", max_preconditioner_dim=max_dim)
    floats = 0
    for role, shape in MEMORY_SHAPES.items():
        floats += 2 * np.prod(shape)
        if role in PRECONDITIONED_ROLES:
            floats += sum(2 * d * d for d in matrix_sides(shape) if d <= max_dim)
    assert state_bytes("soap", SOAP_HP) == FLOAT32_BYTES * floats


@pytest.mark.parametrize("name", ["shampoo", "soap"])
def test_precondition_frequency_is_a_hyperparameter(set_defaults, name: str) -> None:
    """A search space may set the refresh frequency: hp wins over the DEFAULTS constant."""
    hp = SHAMPOO_HP if name == "shampoo" else SOAP_HP
    set_defaults(name, precondition_frequency=2)
    by_constant = run_reference(name, dict(hp), steps=3).values()
    set_defaults(name, precondition_frequency=10)
    by_hp = run_reference(name, {**hp, "precondition_frequency": 2}, steps=3).values()
    default = run_reference(name, dict(hp), steps=3).values()
    assert max_abs_diff(by_hp, by_constant) == 0.0
    assert max_abs_diff(by_hp, default) > 1e-6
