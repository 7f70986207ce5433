"""The fixed problem every reference optimizer is checked on, and the harness side of the check.

Each parameter θ (one per role) has its own per-step target T_t and curvature w > 0; the loss is

    L_t(θ) = Σ_elements  w·(θ − T_t)²/2 + (θ − T_t)⁴/12

so the gradient g = w·(θ − T_t) + (θ − T_t)³/3 changes with θ (a real trajectory, not a fixed
gradient sequence) and the Hessian is diagonal: h = w + (θ − T_t)². The batch of step t is t.

`run_reference` steps a reference submission through the harness's own `make_stepper` (schedule,
clipping and full-control closures included); a test compares the result with a NumPy
implementation of the documented equations, driven by `Problem.grad` and `lr_multipliers`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.contract import Hyperparameters, ParamGroups, Role, WorkloadInfo
from harness.memory import optimizer_state_bytes
from harness.schedules import warmup_cosine
from harness.stepper import make_stepper
from harness.stepping import Stepper
from harness.submission import load_submission

# One parameter per role; a conv filter (out, in, kh, kw) is a matrix to matrix optimizers.
SHAPES: dict[Role, tuple[int, ...]] = {
    Role.MATRIX: (6, 4),
    Role.CONV: (3, 2, 2, 2),
    Role.EMBEDDING: (5, 4),
    Role.HEAD: (3, 4),
    Role.NORM: (4,),
    Role.BIAS: (3,),
}
# Larger shapes for the state-memory check, so O(m + n) and O(m·n) states differ clearly.
MEMORY_SHAPES: dict[Role, tuple[int, ...]] = {
    Role.MATRIX: (64, 48),
    Role.CONV: (16, 8, 3, 3),
    Role.EMBEDDING: (40, 48),
    Role.HEAD: (10, 48),
    Role.NORM: (48,),
    Role.BIAS: (10,),
}
MAX_STEPS = 10  # the budget the schedule sees; the check runs the first `steps` of it


@dataclass(frozen=True)
class Problem:
    """The fixed problem: initial values, curvatures and per-step targets, all float64 NumPy."""

    roles: tuple[Role, ...]
    initial: tuple[np.ndarray, ...]
    curvature: tuple[np.ndarray, ...]
    targets: tuple[tuple[np.ndarray, ...], ...]  # targets[t][i]: parameter i's target at step t

    def grad(self, step: int, thetas: list[np.ndarray]) -> list[np.ndarray]:
        """∂L_step/∂θ for every parameter."""
        out = []
        for theta, w, target in zip(thetas, self.curvature, self.targets[step], strict=True):
            d = theta - target
            out.append(w * d + d**3 / 3)
        return out

    def hessian_diag(self, step: int, thetas: list[np.ndarray]) -> list[np.ndarray]:
        """The (exact, diagonal) Hessian of L_step."""
        return [
            w + (theta - target) ** 2
            for theta, w, target in zip(thetas, self.curvature, self.targets[step], strict=True)
        ]

    def loss(self, step: int, thetas: list[np.ndarray]) -> float:
        total = 0.0
        for theta, w, target in zip(thetas, self.curvature, self.targets[step], strict=True):
            d = theta - target
            total += float(np.sum(w * d**2 / 2 + d**4 / 12))
        return total


def make_problem(
    shapes: dict[Role, tuple[int, ...]] = SHAPES, steps: int = MAX_STEPS, seed: int = 0
) -> Problem:
    rng = np.random.default_rng(seed)
    roles = tuple(shapes)
    initial = tuple(rng.normal(0.0, 0.5, shapes[r]) for r in roles)
    curvature = tuple(rng.uniform(0.2, 3.0, shapes[r]) for r in roles)
    targets = tuple(tuple(rng.normal(0.0, 1.0, shapes[r]) for r in roles) for _ in range(steps))
    return Problem(roles, initial, curvature, targets)


def info_for(problem: Problem) -> WorkloadInfo:
    return WorkloadInfo(
        step_hint=MAX_STEPS,
        max_steps=MAX_STEPS,
        max_time_s=60.0,
        batch_size=1,
        tokens_per_step=1,
        scale="smoke",
        device="cpu",
    )


def lr_multipliers(name: str, hp: dict[str, Any], steps: int = MAX_STEPS) -> list[float]:
    """The schedule's multiplier at steps 0.. (the submission's own `schedule`,
    else the default)."""
    module = load_submission(name).module
    factory = getattr(module, "schedule", None) or warmup_cosine
    schedule = factory(Hyperparameters(hp), info_for(make_problem()))
    return [float(schedule(t)) for t in range(steps)]


@dataclass
class Run:
    """What `run_reference` leaves: the stepper, the torch parameters and their NumPy values."""

    stepper: Stepper
    params: list[torch.nn.Parameter]
    problem: Problem

    def values(self) -> list[np.ndarray]:
        return [p.detach().cpu().double().numpy().copy() for p in self.params]

    def state_bytes(self) -> int:
        return optimizer_state_bytes(self.stepper.optimizer_state, self.params)


def run_reference(
    name: str,
    hp: dict[str, Any],
    steps: int = 3,
    problem: Problem | None = None,
    dtype: torch.dtype = torch.float64,
) -> Run:
    """Steps reference submission `name` at point `hp` for `steps` steps on the fixed problem."""
    problem = problem or make_problem()
    params = [torch.nn.Parameter(torch.tensor(v, dtype=dtype)) for v in problem.initial]
    groups = ParamGroups(tuple(params), problem.roles)
    curvature = [torch.tensor(w, dtype=dtype) for w in problem.curvature]
    targets = [[torch.tensor(t, dtype=dtype) for t in ts] for ts in problem.targets]

    def loss_fn(step: int) -> torch.Tensor:
        total = torch.zeros((), dtype=dtype)
        for theta, w, target in zip(params, curvature, targets[step], strict=True):
            d = theta - target
            total = total + (w * d**2 / 2 + d**4 / 12).sum()
        return total

    def forward_backward(step: int) -> torch.Tensor:
        loss = loss_fn(step)
        loss.backward()
        return loss.detach()

    submission = load_submission(name)
    stepper = make_stepper(
        submission, groups, Hyperparameters(hp), info_for(problem), loss_fn, forward_backward
    )
    for step in range(steps):
        stepper.step(step, step)
    return Run(stepper, params, problem)


def max_abs_diff(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    assert len(got) == len(want)
    return max(float(np.max(np.abs(g - w))) for g, w in zip(got, want, strict=True))


@contextlib.contextmanager
def jax_x64() -> Iterator[None]:
    """JAX with 64-bit floats, so optax-backed references can be checked in float64."""
    import jax

    with jax.enable_x64(True):
        yield
