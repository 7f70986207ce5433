"""The workload contract: what every benchmark problem declares and provides.

A workload is one file under `workloads/` holding a subclass of `Workload`. It declares, per scale,
a `WorkloadConfig` (target, budget, batch, tokens per step, eval cadence in steps, precision) and
provides data, model, parameter roles, loss and evaluation. Changing any declared value bumps
`version`; results of different versions are never compared.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.contract import ParamGroups, Role, WorkloadInfo
from harness.errors import ContractError, UsageError
from harness.target import Direction, Target

if TYPE_CHECKING:
    import torch

__all__ = [
    "Budget",
    "BuildWorkload",
    "Direction",
    "Precision",
    "ThroughputUnit",
    "Target",
    "Workload",
    "WorkloadConfig",
    "ladder_configs",
    "roles_by_module",
]


BuildWorkload = Callable[[str, str, Path], "Workload"]
"""Builds the workload a trial names, at its scale, over its data folder (`workloads.get_workload`).
The layers above pass it down: the harness itself knows no workload by name."""


class Precision(StrEnum):
    """How a trial's forward passes run on a GPU (a CPU trial always runs `fp32`)."""

    FP32 = "fp32"
    BF16_AUTOCAST = "bf16-autocast"  # bfloat16 under torch.autocast; weights and optimizer fp32


class ThroughputUnit(StrEnum):
    """What a workload's `tokens_per_step` counts."""

    TOKENS = "tokens"
    EXAMPLES = "examples"


@dataclass(frozen=True, slots=True)
class Budget:
    """How long a trial may train.

    Attributes:
      max_steps: the step budget.
      max_time_s: the timed-training budget on this scale's hardware class.
      step_hint: steps the reference needs (`WorkloadInfo.step_hint`); about 80% of `max_steps`.
    """

    max_steps: int
    max_time_s: float
    step_hint: int


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """Everything a workload declares at one scale.

    Attributes:
      target: the target and its seed gate.
      budget: steps, seconds and step hint.
      batch_size: examples (sequences) per step, fixed for every submission.
      tokens_per_step: tokens per step (language models) or examples per step.
      throughput_unit: `tokens` or `examples`, the unit of `tokens_per_step`.
      eval_every_steps: the eval cadence.
      precision: the precision on a GPU, e.g. `bf16-autocast`; CPU trials always run `fp32`.
      model: free-form model size settings, recorded with each trial.
      micro_batch_size: examples per forward/backward on one process; a larger per-process
        batch is split and its gradients accumulated (None: one pass per step).
      eval_every_steps_late: a denser eval cadence for the last `late_fraction` of the step
        budget, so the step that reaches a target late in training is found precisely.
      late_fraction: the share of `max_steps` that uses `eval_every_steps_late`.
    """

    target: Target
    budget: Budget
    batch_size: int
    tokens_per_step: int
    throughput_unit: ThroughputUnit
    eval_every_steps: int
    precision: Precision = Precision.FP32
    model: tuple[tuple[str, Any], ...] = ()
    micro_batch_size: int | None = None
    eval_every_steps_late: int | None = None
    late_fraction: float = 0.1

    def eval_due(self, done_steps: int, max_steps: int) -> bool:
        """Whether the runner evaluates after `done_steps` steps of a `max_steps` budget."""
        late = self.eval_every_steps_late
        if late is not None and done_steps >= max_steps * (1.0 - self.late_fraction):
            return done_steps % late == 0
        return done_steps % self.eval_every_steps == 0


class Workload(abc.ABC):
    """A fixed benchmark problem at one scale.

    The runner calls, in order: `setup` (untimed: load data onto the device), `build_model`,
    `param_roles`; then per step `get_batch` and `loss` (timed), and `evaluate` every
    `config.eval_every_steps` steps (untimed).

    Ladders (fixed-resource and scaling studies): `ladders[base]` names the rung scales of a base
    scale, smallest model first; `ladder_batches[base]` the batch sizes the fixed-resource track
    may choose. A rung `r` at batch `b` is the scale `r` when `b` is the base's batch, else
    `r-b<b>` (e.g. `smoke-s-b32`). Every rung and batch variant is an ordinary key of `configs`
    (built by `ladder_configs`): the base scale's target, budget, cadence and data, another model.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    configs: ClassVar[dict[str, WorkloadConfig]]
    ladders: ClassVar[dict[str, tuple[str, ...]]] = {}
    ladder_batches: ClassVar[dict[str, tuple[int, ...]]] = {}
    # The reference AdamW point per scale (a point of `submissions/adamw`'s search space):
    # `optbench calibrate` trains it over seeds to set and confirm the targets.
    reference_hparams: ClassVar[dict[str, dict[str, float]]] = {}

    def __init__(self, scale: str, data_dir: Path) -> None:
        """Args:
        scale: a key of `configs` (`smoke`, `full`).
        data_dir: where prepared datasets live (and where smoke data is built on first use).
        """
        self.scale = scale
        self.base_scale = self.base_scale_of(scale)  # whose data, validation and targets it uses
        self.config = self.configs[scale]
        self.data_dir = Path(data_dir)

    @classmethod
    def ladder_scales(cls, base: str, with_batches: bool = False) -> tuple[str, ...]:
        """The rung scales of `base`'s ladder, smallest model first; `with_batches`: every rung at
        every batch of `ladder_batches[base]` (rung-major), the fixed-resource track's choices.

        Raises:
          UsageError: the workload declares no ladder at `base`.
        """
        if base not in cls.ladders:
            known = ", ".join(f"{cls.name}@{b}" for b in cls.ladders) or "none"
            raise UsageError(
                f"workload {cls.name!r} has no ladder at scale {base!r} (its ladders: {known})"
            )
        rungs = cls.ladders[base]
        if not with_batches:
            return rungs
        batches = cls.ladder_batches.get(base) or (cls.configs[base].batch_size,)
        return tuple(_variant(r, b, cls.configs[base].batch_size) for r in rungs for b in batches)

    @classmethod
    def base_scale_of(cls, scale: str) -> str:
        """The base scale of a rung or batch variant (`smoke-s-b32` -> `smoke`); else `scale`."""
        for base in cls.ladders:
            if scale in cls.ladder_scales(base, with_batches=True):
                return base
        return scale

    @abc.abstractmethod
    def setup(self, device: torch.device, seed: int) -> None:
        """Loads (never downloads) the data and stages it on `device`; seeds the data order."""

    @abc.abstractmethod
    def build_model(self, seed: int) -> torch.nn.Module:
        """Returns the model, initialised from `seed`, on the device given to `setup`."""

    @abc.abstractmethod
    def param_roles(self, model: torch.nn.Module) -> dict[str, Role]:
        """Maps every trainable parameter's qualified name to its role."""

    @abc.abstractmethod
    def get_batch(self, step: int) -> Any:
        """The training batch of `step`: a pure function of (seed, step), so resumes agree."""

    @abc.abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The scalar mean training loss of `model` on `batch`."""

    @abc.abstractmethod
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Held-out metrics; includes `config.target.metric`. Called under `torch.no_grad()`."""

    def num_train_examples(self) -> int | None:
        """Distinct examples in the training split, after `setup` (None: batches are windows
        drawn from a token stream, with no count of examples)."""
        return None

    def num_eval_examples(self) -> int | None:
        """Examples in the held-out split `evaluate` scores, after `setup` (None: not declared)."""
        return None

    def after_step(self, model: torch.nn.Module) -> None:
        """Work the workload does after each optimizer step, timed (e.g. an EMA of the weights)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """State the workload itself changes during training (e.g. an EMA), for checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores `state_dict()`'s state (after `setup` and `build_model`)."""
        return None

    def precision(self, device: torch.device) -> Precision:
        """The precision a trial on `device` runs: `config.precision` on a GPU, else `fp32`."""
        return self.config.precision if device.type == "cuda" else Precision.FP32

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The autocast region for forward passes under `precision(device)`."""
        import torch

        if self.precision(device) is Precision.BF16_AUTOCAST:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def param_groups(self, model: torch.nn.Module) -> ParamGroups:
        """Every trainable parameter of `model` with its role, in registration order.

        Raises:
          ContractError: a trainable parameter has no role, or a role names no parameter.
        """
        roles = self.param_roles(model)
        named = dict(model.named_parameters())
        stray = sorted(set(roles) - set(named))
        if stray:
            raise ContractError(f"workload {self.name}: roles given for no parameter: {stray}")
        trainable = [(name, p) for name, p in named.items() if p.requires_grad]
        missing = [name for name, _ in trainable if name not in roles]
        if missing:
            raise ContractError(f"workload {self.name}: parameters without a role: {missing}")
        return ParamGroups(
            tuple(p for _, p in trainable), tuple(Role(roles[n]) for n, _ in trainable)
        )

    def info(
        self,
        device: str,
        max_steps: int | None = None,
        max_time_s: float | None = None,
        memory_cap_bytes: int | None = None,
    ) -> WorkloadInfo:
        """What a submission may know about this workload; `max_steps`/`max_time_s` override,
        `memory_cap_bytes` is the fixed-resource track's cap."""
        config = self.config
        return WorkloadInfo(
            step_hint=config.budget.step_hint,
            max_steps=max_steps or config.budget.max_steps,
            max_time_s=max_time_s or config.budget.max_time_s,
            batch_size=config.batch_size,
            tokens_per_step=config.tokens_per_step,
            scale=self.scale,
            device=device,
            memory_cap_bytes=memory_cap_bytes,
        )


def _variant(rung: str, batch: int, base_batch: int) -> str:
    return rung if batch == base_batch else f"{rung}-b{batch}"


def ladder_configs(
    configs: Mapping[str, WorkloadConfig],
    ladders: Mapping[str, tuple[str, ...]],
    batches: Mapping[str, tuple[int, ...]],
    models: Mapping[str, Mapping[str, Any]],
) -> dict[str, WorkloadConfig]:
    """The configs of every rung and batch variant of `ladders` that `configs` lacks.

    A rung is its base scale's config with `model = models[rung]`; a batch variant also has
    `batch_size = b` and `tokens_per_step` scaled by `b / base batch` (micro-batches kept, at
    most `b`). A rung may be the base scale itself (its config is reused, not rebuilt).

    Args:
      configs: the declared base scales' configs.
      ladders: base scale -> rung scale names, smallest model first.
      batches: base scale -> the batch sizes of the fixed-resource track (may omit a base).
      models: rung scale -> model settings (`WorkloadConfig.model`, as a mapping).
    """
    out: dict[str, WorkloadConfig] = {}
    for base, rungs in ladders.items():
        base_config = configs[base]
        per_example = base_config.tokens_per_step // base_config.batch_size
        for rung in rungs:
            model = tuple(models[rung].items())
            for batch in batches.get(base) or (base_config.batch_size,):
                name = _variant(rung, batch, base_config.batch_size)
                if name in configs:
                    continue
                micro = base_config.micro_batch_size
                out[name] = dataclasses.replace(
                    base_config,
                    model=model,
                    batch_size=batch,
                    tokens_per_step=batch * per_example,
                    micro_batch_size=None if micro is None else min(micro, batch),
                )
    return out


def roles_by_module(
    model: torch.nn.Module, role_of: Callable[[torch.nn.Module, str], Role | None], workload: str
) -> dict[str, Role]:
    """Roles for every parameter, chosen by the module that owns it and the parameter's name.

    Args:
      model: the workload's model.
      role_of: `(owning module, parameter name such as "weight") -> Role`, or None if unknown.
      workload: the workload's name, for the error message.

    Raises:
      ContractError: `role_of` has no role for some parameter.
    """
    roles: dict[str, Role] = {}
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}" if module_name else param_name
            role = role_of(module, param_name)
            if role is None:
                raise ContractError(f"{workload}: no role for parameter {name!r}")
            roles[name] = role
    return roles
