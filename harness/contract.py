"""The submission contract on one page.

A submission is a folder with `submission.py`, `search_space.json` and a README. The runner detects
which of three levels `submission.py` implements:

1. Optimizer factory:
       def optimizer(params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo)
           -> torch.optim.Optimizer | optax.GradientTransformation
   and optionally
       def schedule(hp: Hyperparameters, info: WorkloadInfo) -> Callable[[int], float]
   (learning-rate multiplier by step; default: `harness.schedules.warmup_cosine` driven by `hp`).
   The harness runs forward, backward, clipping (when `hp` has `grad_clip`) and the step. Every
   parameter must be in exactly one optimizer's groups (or given to one optax transformation).
   `optimizer` is also called once before the trial, on CPU parameters of the right shapes and
   roles whose values are undefined (`harness.precheck`): it must build, not read the values.
2. Full control: a class `Submission` with `__init__(params, hp, info)`,
   `update(batch, step, ctx: StepContext) -> loss tensor`, and optionally `prepare_for_eval()`
   (timed: schedule-free and EMA weight swaps) and `state_dict()`/`load_state_dict()`.
3. AlgoPerf compatibility: an AlgoPerf PyTorch submission module, unmodified: `get_batch_size`,
   `init_optimizer_state`, `update_params`, `data_selection` and optionally `prepare_for_eval`,
   importing `spec` / `pytorch_utils` from `algoperf` or `algorithmic_efficiency` (optbench's
   stand-in, `harness.algoperf.shim`, unless AlgoPerf is installed). `workload` is an adapter with
   `model_fn`, `loss_fn`, `param_shapes`, `model_params_types`, `step_hint`; `hyperparameters` a
   namedtuple of the point. One process only; the workload's fixed batch size (`get_batch_size` is
   not called). Details: `harness.algoperf.stepper`, `harness.algoperf.adapter`.

Parameters come labelled with a `Role`; a submission chooses by role, never by name, shape or
workload. `WorkloadInfo` is all a submission may know about the workload: never its name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch is imported only where tensors exist, so reports stay torch-free.
    import torch

__all__ = [
    "NO_DECAY_ROLES",
    "FullControlSubmission",
    "Hyperparameters",
    "ParamGroups",
    "Role",
    "StepContext",
    "WorkloadInfo",
]


class Role(StrEnum):
    """What a parameter is, so optimizers can treat like with like on every workload."""

    MATRIX = "matrix"  # hidden 2-D weights (attention and MLP projections, dense layers)
    CONV = "conv"  # 4-D convolution filters
    EMBEDDING = "embedding"  # token or patch embeddings
    HEAD = "head"  # the output layer
    NORM = "norm"  # normalization gains
    BIAS = "bias"
    SCALAR = "scalar"  # any other small parameter (gates, temperatures)


# Roles that conventional recipes exclude from weight decay.
NO_DECAY_ROLES = frozenset({Role.NORM, Role.BIAS, Role.SCALAR})


@dataclass(frozen=True, slots=True)
class ParamGroups:
    """Every trainable parameter of the model, each with exactly one role, in a fixed order.

    Attributes:
      params: the trainable parameters, in the model's registration order.
      roles: `roles[i]` is the role of `params[i]`.
    """

    params: tuple[torch.nn.Parameter, ...]
    roles: tuple[Role, ...]

    def __post_init__(self) -> None:
        if len(self.params) != len(self.roles):
            raise ValueError("ParamGroups needs one role per parameter")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("ParamGroups lists a parameter twice")

    def __iter__(self) -> Iterator[torch.nn.Parameter]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def with_roles(self, *roles: Role | str) -> list[torch.nn.Parameter]:
        """The parameters whose role is one of `roles`, in order."""
        wanted = {Role(r) for r in roles}
        return [p for p, r in zip(self.params, self.roles, strict=True) if r in wanted]

    def without_roles(self, *roles: Role | str) -> list[torch.nn.Parameter]:
        """The parameters whose role is none of `roles`, in order."""
        unwanted = {Role(r) for r in roles}
        return [p for p, r in zip(self.params, self.roles, strict=True) if r not in unwanted]

    def decay_mask(self) -> list[bool]:
        """`mask[i]` is True when `params[i]` takes weight decay under the usual exclusions."""
        return [r not in NO_DECAY_ROLES for r in self.roles]

    def torch_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """torch.optim param groups: `weight_decay` on decayed roles, 0 on norms, biases,
        scalars."""
        decayed = [p for p, d in zip(self.params, self.decay_mask(), strict=True) if d]
        undecayed = [p for p, d in zip(self.params, self.decay_mask(), strict=True) if not d]
        groups = [{"params": decayed, "weight_decay": weight_decay}]
        if undecayed:
            groups.append({"params": undecayed, "weight_decay": 0.0})
        return [g for g in groups if g["params"]]


class Hyperparameters(Mapping[str, Any]):
    """One point of a submission's search space: `hp["lr"]`, `hp.lr` and `hp.get("lr", 1e-3)`."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith(
            "_"
        ):  # private and dunder lookups (pickle, copy) never mean a hyperparameter
            raise AttributeError(key)
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"hyperparameter {key!r} is not in this point") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Hyperparameters are read-only")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Hyperparameters({self._values!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Hyperparameters, (self._values,))


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """What a submission may know about the workload it trains (never the workload's name).

    Attributes:
      step_hint: steps a well-tuned reference needs; schedules are usually sized by it.
      max_steps: the step budget; the trial stops there.
      max_time_s: the timed-training budget in seconds.
      batch_size: examples (sequences for language models) per step.
      tokens_per_step: tokens per step for language models, examples per step otherwise.
      scale: `smoke`, `full`, or a rung of the workload's ladder (e.g. `smoke-l`, `full-xs-b256`).
      device: the torch device string the model lives on (`cpu`, `cuda:0`).
      memory_cap_bytes: the fixed-resource track's memory cap above the staged data (None: no
        cap); a trial whose peak exceeds it ends `over_budget`.
    """

    step_hint: int
    max_steps: int
    max_time_s: float
    batch_size: int
    tokens_per_step: int
    scale: str
    device: str
    memory_cap_bytes: int | None = None


@runtime_checkable
class StepContext(Protocol):
    """Closures a full-control submission calls inside `update` (all of it is timed)."""

    def loss(self, batch: Any) -> torch.Tensor:
        """Forward pass on `batch` with autograd on; returns the scalar mean loss."""
        ...

    def forward_backward(self, batch: Any) -> torch.Tensor:
        """Zeroes the grads, runs forward and backward on `batch`; returns the detached loss."""
        ...

    def lr_multiplier(self, step: int) -> float:
        """The harness's default schedule's multiplier at `step` (warmup + cosine from `hp`)."""
        ...


@runtime_checkable
class FullControlSubmission(Protocol):
    """Level 2: a class named `Submission` in `submission.py`."""

    def __init__(self, params: ParamGroups, hp: Hyperparameters, info: WorkloadInfo) -> None: ...

    def update(self, batch: Any, step: int, ctx: StepContext) -> torch.Tensor:
        """Performs training step `step` on `batch`; returns the (detached) training loss."""
        ...


ScheduleFn = Callable[[int], float]
