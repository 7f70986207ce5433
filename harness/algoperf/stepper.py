"""Level 3: an AlgoPerf submission's functions, driven through one optbench trial.

Once, untimed:
`optimizer_state = init_optimizer_state(workload, model, None, hyperparameters, rng)`.
Per step, timed (AlgoPerf's order and argument names):

    queue.put(workload.algoperf_batch(batch))          the step's fixed batch as AlgoPerf's dict
    b = data_selection(workload, queue, optimizer_state, model, model_state, hyperparameters,
                       step, rng)
    optimizer_state, model, model_state = update_params(workload=..., batch=b, global_step=step,
                                                        eval_results=..., rng=..., ...)
    loss = summed / n_valid_examples of the step's first `workload.loss_fn` call

and before each eval (timed) `prepare_for_eval(...)` when the module defines it. `workload` is a
`harness.algoperf.adapter.AlgoPerfWorkload`; `hyperparameters` a namedtuple of the trial's point
(AlgoPerf's names such as `learning_rate` and `one_minus_beta1` as they are in the search space),
or None for a self-tuning submission (no search space: AlgoPerf's self-tuning ruleset);
`rng` a numpy uint32 key of shape (2,) drawn from (seed, purpose, step); `eval_results` the list of
`(steps, metrics)` pairs so far, with AlgoPerf's names (`validation/accuracy`) beside optbench's;
`train_state`, passed only to an `update_params` that takes it, a read-only view of AlgoPerf's dict
(`accumulated_submission_time`, `accumulated_eval_time`, `is_time_remaining`,
`validation_goal_reached`, `test_goal_reached`, `training_complete`). `update_params` and
`prepare_for_eval` get the keywords their signatures name (older and newer AlgoPerf APIs differ in
`train_state` and `eval_results`).

Where this differs from AlgoPerf's runner:
  - `get_batch_size` is never called: optbench workloads fix the batch size, and a submission may
    not learn the workload's name (`load_submission` still requires the function).
  - `data_selection` draws one batch per step: a step's batch is fixed by (seed, step).
  - the submission runs the whole batch through one forward: no micro-batching, so a workload whose
    config splits its batch (`micro_batch_size`, nanogpt full) needs more memory than at levels 1-2.
  - one process: a data-parallel level-3 trial is refused.
  - `update_params` trains the model it is given in place and returns it.
  - `TrainingCompleteError` from the submission ends the trial after one more eval, recorded as
    `budget_exhausted` (or `target_reached` if it was), never `failed`.
The compile warm-up (one step, then the state put back) runs when the optimizer state is made of
torch optimizers, LR schedulers, tensors, plain values, dicts, lists and tuples; otherwise the
trial runs without one (`compile_time_s` 0) rather than risk leaking the warm-up's step.
"""

from __future__ import annotations

import abc
import collections
import copy
import inspect
import keyword
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LRScheduler

from harness.algoperf.adapter import AlgoPerfWorkload, algoperf_eval_result
from harness.algoperf.names import PACKAGE_NAMES
from harness.algoperf.shim import spec as shim_spec
from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo
from harness.errors import ContractError
from harness.stepping import Stepper, TrainingComplete, TrialContext

__all__ = ["AlgoPerfStepper", "make_algoperf_stepper"]

# `purpose` of an rng key: one stream each, so no two calls share a key
_INIT, _DATA, _UPDATE, _EVAL = range(4)


def make_algoperf_stepper(
    module: ModuleType,
    source: str,
    is_self_tuning: bool,
    groups: ParamGroups,
    hp: Hyperparameters,
    info: WorkloadInfo,
    trial: TrialContext,
) -> AlgoPerfStepper:
    """Wraps a level-3 submission (its imported `module`, from file `source`) for this trial: the
    adapter, its optimizer state, the stepper.

    Raises:
      ContractError: a data-parallel trial, a workload without AlgoPerf support, or hyperparameter
        names that cannot be namedtuple fields.
    """
    if trial.world_size > 1:
        raise ContractError(
            f"{source}: AlgoPerf-style submissions (level 3) run in one process; this trial asks "
            f"for {trial.world_size} (run it with world_size 1)"
        )
    spec = _spec_of(module)
    if isinstance(spec.Workload, abc.ABCMeta):  # so isinstance(workload, spec.Workload) holds
        spec.Workload.register(AlgoPerfWorkload)
    adapter = AlgoPerfWorkload(trial.workload, trial.model, groups, info, spec)
    # A self-tuning submission gets no hyperparameters, as in AlgoPerf's self-tuning runner.
    hyperparameters = None if is_self_tuning else _namedtuple(hp, source)
    return AlgoPerfStepper(module, adapter, trial, hyperparameters, info, spec)


class AlgoPerfStepper(Stepper):
    """Steps through `update_params`; `optimizer_state` is the submission's own (see the module
    docstring for the calls)."""

    def __init__(
        self,
        module: ModuleType,
        adapter: AlgoPerfWorkload,
        trial: TrialContext,
        hyperparameters: Any,
        info: WorkloadInfo,
        spec: ModuleType,
    ) -> None:
        self._module = module
        self._workload = adapter
        self._trial = trial
        self._model = trial.model
        self._hp = hyperparameters
        self._info = info
        self._queue = _StepQueue()
        self._model_state: Any = None
        self._eval_results: list[tuple[int, dict[str, float]]] = []
        self._steps_done = 0
        self._train_state: dict[str, Any] = {
            "accumulated_submission_time": 0.0,
            "accumulated_eval_time": 0.0,
            "accumulated_logging_time": 0.0,
            "is_time_remaining": True,
            "validation_goal_reached": False,
            "test_goal_reached": False,
            "training_complete": False,
        }
        self._complete_errors = _completion_errors(spec)
        self._update_names = _keyword_names(module.update_params)
        prepare = getattr(module, "prepare_for_eval", None)
        self._prepare = prepare if callable(prepare) else None
        self._prepare_names = _keyword_names(prepare) if callable(prepare) else None
        self.optimizer_state = module.init_optimizer_state(
            adapter, self._model, None, hyperparameters, _key(trial.seed, _INIT, 0)
        )

    def step(self, batch: Any, step: int) -> torch.Tensor:
        self._queue.put(self._workload.view.algoperf_batch(batch), step)
        clock = self._trial.clock
        train_s = clock.train_seconds()  # exact, as AlgoPerf's runner reads it every step
        self._train_state.update(
            accumulated_submission_time=train_s,
            accumulated_eval_time=clock.eval_s,
            is_time_remaining=train_s < self._info.max_time_s,
        )
        self._workload.start_step()
        try:
            selected = self._module.data_selection(
                self._workload,
                self._queue,
                self.optimizer_state,
                self._model,
                self._model_state,
                self._hp,
                step,
                _key(self._trial.seed, _DATA, step),
            )
            result = self._call(
                self._module.update_params,
                self._update_names,
                batch=selected,
                global_step=step,
                rng=_key(self._trial.seed, _UPDATE, step),
                train_state=MappingProxyType(self._train_state),
            )
        except self._complete_errors as exc:
            raise TrainingComplete(f"the submission ended training before step {step}") from exc
        self.optimizer_state, self._model_state = self._unpack(result, "update_params")
        self._steps_done = step + 1
        loss = self._workload.step_loss()
        if loss is None:
            raise ContractError(
                "update_params never called workload.loss_fn; optbench records "
                "each step's training loss from its first call"
            )
        return loss

    def prepare_for_eval(self) -> None:
        if self._prepare is None:
            return
        rng = _key(self._trial.seed, _EVAL, self._steps_done)
        result = self._call(
            self._prepare, self._prepare_names, global_step=self._steps_done, rng=rng
        )
        self.optimizer_state, self._model_state = self._unpack(result, "prepare_for_eval")

    def observe_eval(self, steps: int, metrics: Mapping[str, float]) -> None:
        self._eval_results.append((steps, algoperf_eval_result(metrics)))
        target = self._trial.workload.config.target
        if target.is_met(metrics[target.metric]):
            self._train_state.update(validation_goal_reached=True, test_goal_reached=True)

    def snapshot(self) -> Any | None:
        try:
            return _freeze((self.optimizer_state, self._model_state))
        except _NotRestorable:
            return None

    def restore(self, snapshot: Any) -> None:
        self.optimizer_state, self._model_state = _thaw(snapshot)
        self._steps_done = 0

    def _call(self, fn: Callable[..., Any], names: frozenset[str] | None, **specific: Any) -> Any:
        """Calls `fn` with AlgoPerf's keyword arguments, those its signature names
        (all for None)."""
        arguments = {
            "workload": self._workload,
            "current_param_container": self._model,
            "current_params_types": self._workload.model_params_types,
            "model_state": self._model_state,
            "hyperparameters": self._hp,
            "loss_type": self._workload.loss_type,
            "optimizer_state": self.optimizer_state,
            "eval_results": self._eval_results,
            **specific,
        }
        return fn(**{k: v for k, v in arguments.items() if names is None or k in names})

    def _unpack(self, result: Any, name: str) -> tuple[Any, Any]:
        """(optimizer_state, model_state) of an `UpdateReturn`, after checking the container."""
        if not (isinstance(result, tuple | list) and len(result) == 3):
            raise ContractError(
                f"{name} returned {type(result).__name__}; expected "
                "(optimizer_state, current_param_container, model_state)"
            )
        optimizer_state, container, model_state = result
        if container is not self._model:
            raise ContractError(
                f"{name} returned a parameter container other than the model it "
                "was given; optbench trains the model in place"
            )
        return optimizer_state, model_state


class _StepQueue:
    """AlgoPerf's input queue over optbench's fixed batches: it yields the step's batch, once."""

    def __init__(self) -> None:
        self._batch: dict[str, Any] | None = None
        self._step = 0

    def put(self, batch: dict[str, Any], step: int) -> None:
        self._batch, self._step = batch, step

    def __iter__(self) -> _StepQueue:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._batch is None:
            raise ContractError(
                f"data_selection drew a second batch in step {self._step}; "
                "optbench workloads have one fixed batch per step"
            )
        batch, self._batch = self._batch, None
        return batch


def _key(seed: int, purpose: int, step: int) -> np.ndarray:
    """The rng key (numpy uint32, shape (2,)) of `purpose` at `step` in a trial of `seed`."""
    draws = np.random.default_rng([seed % 2**63, purpose, step])
    return draws.integers(0, 2**32, size=2, dtype=np.uint32)


def _namedtuple(hp: Hyperparameters, source: str) -> Any:
    """The trial's point as AlgoPerf's `hyperparameters` namedtuple."""
    bad = [n for n in hp if not n.isidentifier() or keyword.iskeyword(n) or n.startswith("_")]
    if bad:
        raise ContractError(
            f"{source}: hyperparameter names {bad} cannot be attributes of "
            "AlgoPerf's hyperparameters namedtuple; use Python identifiers"
        )
    return collections.namedtuple("Hyperparameters", list(hp))(**hp)


def _spec_of(module: ModuleType) -> ModuleType:
    """The `spec` module the submission uses: the one it imported, else an imported AlgoPerf's,
    else optbench's stand-in."""
    enums = ("LossType", "ParameterType", "ForwardPassMode")
    for value in vars(module).values():
        if isinstance(value, ModuleType) and all(hasattr(value, name) for name in enums):
            return value
    for name in PACKAGE_NAMES:
        imported = sys.modules.get(f"{name}.spec")
        if imported is not None:
            return imported
    return shim_spec


def _completion_errors(spec: ModuleType) -> tuple[type[BaseException], ...]:
    """Every `TrainingCompleteError` class the submission may raise (stand-in or real AlgoPerf)."""
    modules = [shim_spec, spec, *(sys.modules.get(f"{name}.spec") for name in PACKAGE_NAMES)]
    found = {getattr(m, "TrainingCompleteError", None) for m in modules if m is not None}
    return tuple(c for c in found if isinstance(c, type) and issubclass(c, BaseException))


def _keyword_names(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword arguments `fn` accepts (None: any, it takes **kwargs)."""
    parameters = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(p.name for p in parameters if p.kind in kinds)


# ----------------------------------------------------------------------------------------------
# Snapshot and restore of an AlgoPerf optimizer state, for the compile warm-up.


class _NotRestorable(Exception):
    """The optimizer state holds a value `_freeze` cannot put back."""


@dataclass(frozen=True, slots=True)
class _Saved:
    """A value and what `_thaw` needs to put it back as it was."""

    value: Any
    saved: Any


def _freeze(value: Any) -> _Saved:
    """A record from which `_thaw` restores `value`, in place where it is mutable (so references
    the submission keeps elsewhere see the restored state).

    Raises:
      _NotRestorable: `value` holds anything but torch optimizers, LR schedulers, tensors, None,
        bools, numbers, strings, and dicts, lists and tuples of those.
    """
    if isinstance(value, torch.optim.Optimizer | LRScheduler):
        return _Saved(value, copy.deepcopy(value.state_dict()))
    if isinstance(value, torch.Tensor):
        return _Saved(value, value.detach().clone())
    if type(value) is dict:
        return _Saved(value, {k: _freeze(v) for k, v in value.items()})
    if type(value) in (list, tuple):
        return _Saved(value, [_freeze(v) for v in value])
    if value is None or type(value) in (bool, int, float, str):
        return _Saved(value, None)
    raise _NotRestorable(type(value).__name__)


def _thaw(record: _Saved) -> Any:
    """Puts a `_freeze` record's value back as it was; returns the value."""
    value, saved = record.value, record.saved
    if isinstance(value, torch.optim.Optimizer | LRScheduler):
        value.load_state_dict(saved)
    elif isinstance(value, torch.Tensor):
        with torch.no_grad():
            value.copy_(saved)
    elif type(value) is dict:
        items = {k: _thaw(v) for k, v in saved.items()}
        value.clear()
        value.update(items)
    elif type(value) is list:
        value[:] = [_thaw(v) for v in saved]
    elif type(value) is tuple:
        return tuple(_thaw(v) for v in saved)
    return value
