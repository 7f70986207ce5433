"""A trial's contract checks that need no training, made before anything starts or is written.

The command line makes them so that a user's mistake costs one line and exit status 2 instead of
a stored `failed` trial: `optbench run` and `calibrate` check each trial's own spec
(`check_trial`); `validate`, `sweep`, `submit` and `scaling` check each submission on a
workload's parameters (`check_submission`). What is checked: the data of the workload is
prepared, the point lies in the search space, and a level-1 submission's `optimizer()` returns
torch optimizers or one optax transformation that together hold every parameter exactly once
(`harness.stepper.check_factory`, the code the runner builds the optimizer with). Inside a trial
the runner meets the same checks again; there a failure is the trial's `failed` row, so a sweep
goes on (failures become data at the trial boundary).

The parameters are the workload's own, with their roles, at the trial's scale: the model is built
on PyTorch's `meta` device and then given uninitialised CPU storage (`shape_only_params`), so even
a full-scale model costs milliseconds and no memory is touched. `Workload.setup` runs on the `meta`
device: it reads the data's files, where a full-scale workload finds its data missing and names
the `optbench data prepare` command, and stages nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from harness.contract import Hyperparameters, ParamGroups
from harness.errors import ContractError
from harness.stepper import check_factory
from harness.submission import Submission, load_submission
from harness.trial import RulesetName, TrialSpec

if TYPE_CHECKING:
    from harness.workload import Workload

__all__ = ["check_submission", "check_trial", "shape_only_params"]


def shape_only_params(workload: Workload, seed: int = 0) -> ParamGroups:
    """The workload's parameters and roles with the right shapes and dtypes and undefined values.

    Raises:
      UsageError: the workload's data is not prepared (from `Workload.setup`).
    """
    meta = torch.device("meta")
    workload.setup(meta, seed)
    with meta:
        model = workload.build_model(seed)
    model.to_empty(device="cpu")  # real storage, so optimizers see ordinary CPU tensors
    return workload.param_groups(model)


def check_trial(spec: TrialSpec, workload: Workload) -> None:
    """Everything about `spec` that can be checked without training, as its trial would check it,
    given the workload it names (built by the caller, as `workloads.get_workload` builds it).

    Raises:
      UsageError: unknown submission; the workload's data is not prepared.
      ContractError: the point is outside the search space, or a level-1 submission's
        `optimizer()` raises or returns what the runner would refuse.
    """
    submission = load_submission(
        spec.submission, allow_self_tuning=spec.ruleset == RulesetName.SELF
    )
    hp = Hyperparameters(spec.hparams)
    submission.search_space.validate_point(hp)
    groups = shape_only_params(workload, spec.seed)
    info = workload.info(spec.device, spec.max_steps, spec.max_time_s, spec.memory_cap_bytes)
    check_factory(submission, groups, hp, info)


def check_submission(submission: Submission, workload: Workload, device: str = "cpu") -> int:
    """Builds a level-1 submission's optimizer at its search space's centre on `workload`'s
    parameters and checks it (other levels: nothing to build); returns the parameter count.

    Raises:
      UsageError: the workload's data is not prepared.
      ContractError: `optimizer()` raises or returns what the runner would refuse; the message
        names the workload whose parameters it was given.
    """
    groups = shape_only_params(workload)
    hp = Hyperparameters(submission.search_space.center())
    try:
        check_factory(submission, groups, hp, workload.info(device))
    except ContractError as exc:
        raise ContractError(
            f"{exc} (given the parameters of {workload.name}@{workload.scale})"
        ) from exc
    return len(groups)
