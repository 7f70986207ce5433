"""How one training step of each submission level is driven. Everything here runs inside the clock.

The harness owns forward, backward, clipping and the schedule for level-1 submissions:

    zero grads
    loss = workload.loss(model, micro-batch)     forward   } per micro-batch of this process's
    (loss · n_m / n).backward()                  backward  } shard (harness.parallel.GradientPass)
    clip_grad_norm_(params, hp.grad_clip)        only when hp has grad_clip
    lr = base_lr · schedule(step)                per param group (optax: the update is scaled)
    optimizer.step()

Level-2 submissions get the same forward/backward as closures and do the rest themselves.
Level-3 (AlgoPerf) submissions run their own `update_params` through `harness.algoperf.stepper`.
`make_stepper` is the one place that tells the levels apart; what a stepper is, the interface the
runner drives, is `harness.stepping`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch

from harness.algoperf.stepper import make_algoperf_stepper
from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo
from harness.errors import ContractError
from harness.schedules import warmup_cosine
from harness.stepping import ForwardBackward, LossFn, Stepper, TrialContext
from harness.submission import Level, Submission

__all__ = ["check_factory", "make_stepper"]


class FactoryStepper(Stepper):
    """Level 1: the submission built an optimizer (or several); the harness does the rest."""

    def __init__(
        self,
        groups: ParamGroups,
        forward_backward: ForwardBackward,
        optimizers: Sequence[Any],
        schedule: Callable[[int], float],
        grad_clip: float | None,
    ) -> None:
        self._params = list(groups.params)
        self._forward_backward = forward_backward
        self._optimizers = list(optimizers)
        self._schedule = schedule
        self._grad_clip = grad_clip
        self._base_lrs = [
            [group["lr"] for group in opt.param_groups] if _is_torch(opt) else []
            for opt in self._optimizers
        ]
        self.optimizer_state = self._optimizers

    def step(self, batch: Any, step: int) -> torch.Tensor:
        for param in self._params:
            param.grad = None
        loss = self._forward_backward(batch)
        if self._grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self._grad_clip)
        multiplier = self._schedule(step)
        for opt, base_lrs in zip(self._optimizers, self._base_lrs, strict=True):
            if _is_torch(opt):
                for group, base_lr in zip(opt.param_groups, base_lrs, strict=True):
                    group["lr"] = base_lr * multiplier
                opt.step()
            else:  # the optax bridge: the schedule scales the whole update
                opt.step(lr_multiplier=multiplier)
        return loss

    def snapshot(self) -> Any:
        return [copy.deepcopy(opt.state_dict()) for opt in self._optimizers]

    def restore(self, snapshot: Any) -> None:
        for opt, state in zip(self._optimizers, snapshot, strict=True):
            opt.load_state_dict(state)


class _Context:
    """The closures a full-control submission calls (see `harness.contract.StepContext`)."""

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        loss_fn: LossFn,
        forward_backward: ForwardBackward,
        schedule: Callable[[int], float],
    ) -> None:
        self._params = params
        self.loss = loss_fn
        self._forward_backward = forward_backward
        self.lr_multiplier = schedule

    def forward_backward(self, batch: Any) -> torch.Tensor:
        for param in self._params:
            param.grad = None
        return self._forward_backward(batch)


class FullControlStepper(Stepper):
    """Level 2: the submission's `update` runs the step through the context's closures."""

    def __init__(self, instance: Any, ctx: _Context) -> None:
        self._instance = instance
        self._ctx = ctx
        self.optimizer_state = instance

    def step(self, batch: Any, step: int) -> torch.Tensor:
        loss = self._instance.update(batch, step, self._ctx)
        if not isinstance(loss, torch.Tensor):
            raise ContractError(f"Submission.update returned {type(loss).__name__}, not a tensor")
        return loss.detach()

    def prepare_for_eval(self) -> None:
        hook = getattr(self._instance, "prepare_for_eval", None)
        if callable(hook):
            hook()

    def snapshot(self) -> Any | None:
        state_dict = getattr(self._instance, "state_dict", None)
        return copy.deepcopy(state_dict()) if callable(state_dict) else None

    def restore(self, snapshot: Any) -> None:
        self._instance.load_state_dict(snapshot)


def _is_torch(opt: Any) -> bool:
    return isinstance(opt, torch.optim.Optimizer)


def _as_optimizers(built: Any, groups: ParamGroups, source: str) -> list[Any]:
    """`optimizer()`'s checked return value, each optax transformation wrapped in the bridge."""
    optimizers = []
    for item in _returned_optimizers(built, groups, source):
        if _is_torch(item):
            optimizers.append(item)
        else:
            from harness.optax_bridge import OptaxOptimizer  # jax is imported only when used

            optimizers.append(OptaxOptimizer(list(groups.params), item))
    return optimizers


def _returned_optimizers(built: Any, groups: ParamGroups, source: str) -> list[Any]:
    """What a level-1 `optimizer()` returned, as a list, once it has been checked.

    Args:
      built: the return value: a torch optimizer, an optax transformation, or a list of them.
      groups: the parameters `optimizer()` was given.
      source: the submission's file, for messages.

    Raises:
      ContractError: an item is neither a torch optimizer nor an optax transformation, or a
        parameter is in no optimizer or in more than one.
    """
    # An optax transformation is itself a NamedTuple: recognise it before treating tuples as lists.
    is_sequence = isinstance(built, list | tuple) and not _is_optax(built)
    items = list(built) if is_sequence else [built]
    for item in items:
        if not (_is_torch(item) or _is_optax(item)):
            what = "None" if item is None else type(item).__name__
            raise ContractError(
                f"{source}: optimizer() returned {what}; expected a "
                "torch.optim.Optimizer, an optax.GradientTransformation, or a list of them"
            )
    _check_coverage(items, groups, source)
    return items


def check_factory(
    submission: Submission, groups: ParamGroups, hp: Hyperparameters, info: WorkloadInfo
) -> None:
    """Builds a level-1 submission's optimizer(s) on `groups` and checks what it returns, as
    `make_stepper` does, without a step or the optax bridge. Other levels pass unchecked: their
    optimizers are built inside the trial.

    Raises:
      ContractError: `optimizer()` raised, or returned something `_returned_optimizers` refuses.
    """
    if submission.level is not Level.FACTORY:
        return
    source = str(submission.folder / "submission.py")
    try:
        built = submission.module.optimizer(groups, hp, info)
    except Exception as exc:  # the user's code: any error is a contract error before the trial
        message = " ".join(str(exc).split())  # one line
        raise ContractError(
            f"{source}: optimizer(params, hp, info) raised {type(exc).__name__}: {message}"
        ) from exc
    _returned_optimizers(built, groups, source)


def _is_optax(obj: Any) -> bool:
    return callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None))


def _check_coverage(optimizers: list[Any], groups: ParamGroups, source: str) -> None:
    """Every parameter must be stepped by exactly one optimizer (the modded-nanogpt assert)."""
    if any(not _is_torch(opt) for opt in optimizers):
        if len(optimizers) != 1:
            raise ContractError(f"{source}: an optax transformation must be the only optimizer")
        return
    seen: dict[int, int] = {}
    for opt in optimizers:
        for group in opt.param_groups:
            for param in group["params"]:
                key = param.untyped_storage().data_ptr()
                seen[key] = seen.get(key, 0) + 1
    for param, role in zip(groups.params, groups.roles, strict=True):
        count = seen.get(param.untyped_storage().data_ptr(), 0)
        if count != 1:
            raise ContractError(
                f"{source}: a {role} parameter of shape {tuple(param.shape)} is in {count} "
                "optimizer groups; every parameter must be in exactly one"
            )


def make_stepper(
    submission: Submission,
    groups: ParamGroups,
    hp: Hyperparameters,
    info: WorkloadInfo,
    loss_fn: LossFn,
    forward_backward: ForwardBackward,
    trial: TrialContext | None = None,
) -> Stepper:
    """Builds the submission's optimizer(s) for this model and wraps them in a `Stepper`.

    Args:
      loss_fn: the forward pass on a batch with autograd on (a full-control submission's
        `ctx.loss`).
      forward_backward: the step's forward and backward, accumulating the batch's mean gradient.
      trial: the model, workload, seed, world size and clock; required for level 3 only.

    Raises:
      ContractError: a level-3 submission without `trial`, or one the adapter refuses.
    """
    module = submission.module
    source = str(submission.folder / "submission.py")
    if submission.level is Level.ALGOPERF:
        if trial is None:
            raise ContractError(
                f"{source}: AlgoPerf-style submissions (level 3) need the trial's "
                "model and workload (make_stepper(..., trial=TrialContext(...)))"
            )
        return make_algoperf_stepper(
            module, source, submission.is_self_tuning, groups, hp, info, trial
        )
    schedule_factory = getattr(module, "schedule", None) or warmup_cosine
    schedule = schedule_factory(hp, info)
    if submission.level is Level.FACTORY:
        optimizers = _as_optimizers(module.optimizer(groups, hp, info), groups, source)
        grad_clip = hp.get("grad_clip")
        return FactoryStepper(groups, forward_backward, optimizers, schedule, grad_clip)
    if submission.level is Level.FULL_CONTROL:
        instance = module.Submission(groups, hp, info)
        ctx = _Context(list(groups.params), loss_fn, forward_backward, schedule)
        return FullControlStepper(instance, ctx)
    raise AssertionError(f"unhandled submission level {submission.level}")
