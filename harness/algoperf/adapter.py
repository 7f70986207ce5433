"""The `workload` an AlgoPerf submission is given: an optbench workload in AlgoPerf's API.

An AlgoPerf PyTorch submission trains through the workload object it receives:

    logits, model_state = workload.model_fn(params=model, augmented_and_preprocessed_input_batch=b,
                                            model_state=..., mode=ForwardPassMode.TRAIN, rng=...,
                                            update_batch_norm=True)
    d = workload.loss_fn(label_batch=b["targets"], logits_batch=logits, mask_batch=b.get("weights"),
                         label_smoothing=...)
    loss = d["summed"] / d["n_valid_examples"]

`AlgoPerfWorkload` provides these from an optbench `Workload` with an AlgoPerf view (its
`algoperf_forward`, `algoperf_loss_type`: `harness.algoperf.view`), the model, and the parameter
roles. Losses, per example e (a token for language models) with mask w_e (1 without a mask),
smoothing ε and C classes:

    SOFTMAX_CROSS_ENTROPY   ℓ_e = −Σ_c q_ec · log softmax(z_e)_c,  q_e = (1 − ε)·onehot(y_e) + ε/C
                            over the last axis: logits (B, T, V) and targets (B, T) give (B, T)
    MEAN_SQUARED_ERROR      ℓ_e = mean over the example's elements of (z_e − y_e)²
    per_example = w·ℓ,   summed = Σ_e w_e·ℓ_e,   n_valid_examples = Σ_e w_e

so `summed / n_valid_examples` with ε = 0 is the workload's own training loss. Parameter keys are
the model's parameter names; types follow the roles:

    matrix, head, scalar -> WEIGHT        conv -> CONV_WEIGHT        embedding -> EMBEDDING
    norm -> BATCH_NORM_SCALE or LAYER_NORM_SCALE, by the owning module (BatchNorm or any other)
    bias -> BIAS; a norm module's bias -> BATCH_NORM_BIAS or LAYER_NORM_BIAS

Enums come from the `spec` module the submission imported (optbench's stand-in or a real AlgoPerf)
and are matched by member name, so either works.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from harness.algoperf.shim.pytorch_utils import update_batch_norm_fn
from harness.algoperf.view import AlgoPerfView
from harness.contract import ParamGroups, Role, WorkloadInfo
from harness.errors import ContractError
from harness.workload import Workload

__all__ = ["AlgoPerfWorkload", "algoperf_eval_result", "algoperf_metric_name"]

# optbench metric prefixes -> AlgoPerf's split names ("validation/accuracy", "train/loss")
_SPLITS = (("train_", "train/"), ("test_", "validation/"), ("val_", "validation/"))


def algoperf_metric_name(name: str) -> str:
    """`test_accuracy` -> `validation/accuracy`, `train_loss` -> `train/loss`,
    else `validation/…`."""
    for prefix, split in _SPLITS:
        if name.startswith(prefix):
            return split + name[len(prefix) :]
    return f"validation/{name}"


def algoperf_eval_result(metrics: Mapping[str, float]) -> dict[str, float]:
    """One eval's metrics under optbench's names and AlgoPerf's (`validation/accuracy`), as the
    dict in AlgoPerf's `eval_results` list of `(global_step, dict)` pairs."""
    return {**metrics, **{algoperf_metric_name(k): v for k, v in metrics.items()}}


def _parameter_type(model: torch.nn.Module, name: str, role: Role) -> str:
    """The AlgoPerf `ParameterType` member name of parameter `name` (see the module docstring)."""
    module_name, _, _ = name.rpartition(".")
    owner = model.get_submodule(module_name)
    norm = "BATCH_NORM" if isinstance(owner, _BatchNorm) else "LAYER_NORM"
    if role is Role.NORM:
        return f"{norm}_SCALE"
    if role is Role.BIAS:
        is_norm_bias = isinstance(owner, _BatchNorm | torch.nn.LayerNorm | torch.nn.GroupNorm)
        return f"{norm}_BIAS" if is_norm_bias else "BIAS"
    return {Role.CONV: "CONV_WEIGHT", Role.EMBEDDING: "EMBEDDING"}.get(role, "WEIGHT")


_ONE_SPLIT = (
    "optbench workloads hold out one split, reported as validation/<metric>; there is "
    "no test split (use the validation_* members)"
)
_OWN_PIPELINE = "each optbench workload batches and normalises its data inside its own pipeline"
_RUNNER_EVALUATES = (
    "optbench evaluates on the workload's step cadence itself; a submission sees "
    "each eval in eval_results"
)


def _no_value(member: str, why: str) -> ContractError:
    """The error of an AlgoPerf `spec.Workload` member optbench has no value for."""
    return ContractError(f"workload.{member} is not available in optbench: {why}")


@contextlib.contextmanager
def _batch_norm_frozen(model: torch.nn.Module, is_frozen: bool) -> Iterator[None]:
    """BatchNorm running statistics stay put inside (`update_batch_norm=False`)."""
    if not is_frozen:
        yield
        return
    model.apply(functools.partial(update_batch_norm_fn, update_batch_norm=False))
    try:
        yield
    finally:
        model.apply(functools.partial(update_batch_norm_fn, update_batch_norm=True))


class AlgoPerfWorkload:
    """What an AlgoPerf submission may use on `workload`: every member of AlgoPerf's
    `spec.Workload`.

    Each member has optbench's value, or raises `ContractError` naming it and why optbench has none
    (never AttributeError). Values:

      loss_type: the `spec.LossType` of the workload's loss.
      step_hint: `WorkloadInfo.step_hint`.
      max_allowed_runtime_sec: the trial's timed-training budget, `WorkloadInfo.max_time_s`: the
        workload's budget for its hardware class unless the trial overrides it.
      eval_period_time_sec: see the property.
      target_metric_name: the target metric without its split (`accuracy`, `loss`); eval results
        carry it as `validation/<name>`.
      validation_target_value: the workload's target value; `has_reached_validation_target` applies
        its direction (`>=` for accuracies, `<=` for losses).
      num_train_examples, num_validation_examples: the sizes of the workload's training and
        held-out splits (`Workload.num_train_examples`, `Workload.num_eval_examples`).
      param_shapes: `{parameter name: spec.ShapeTuple}` for every trainable parameter.
      model_params_types: `{parameter name: spec.ParameterType}`, from the roles.
      metrics_logger: None unless `attach_metrics_logger` sets one (AlgoPerf's is None when it
        does not log).

    What raises: the `test_*` members (optbench holds out one split, reported as `validation/`),
    `num_eval_train_examples` (optbench evaluates no training split), `eval_batch_size`,
    `train_mean`, `train_stddev` (each workload batches and normalises inside its own pipeline),
    and the runner's own methods (`init_model_fn`, `_build_input_queue`, `_eval_model_on_split`,
    `eval_model`): optbench builds the model, feeds `input_queue` and evaluates on the workload's
    cadence itself.

    Raises:
      ContractError: the workload has no AlgoPerf view (`harness.algoperf.view.AlgoPerfView`).
    """

    def __init__(
        self,
        workload: Workload,
        model: torch.nn.Module,
        groups: ParamGroups,
        info: WorkloadInfo,
        spec: ModuleType,
    ) -> None:
        if not isinstance(workload, AlgoPerfView):
            raise ContractError(
                f"workload {workload.name} does not support AlgoPerf-style submissions (level 3): "
                "its loss is not an AlgoPerf loss_fn of one model output"
            )
        self._workload = workload
        self.view: AlgoPerfView = workload  # the workload's AlgoPerf side
        self._spec = spec
        self.loss_type = spec.LossType[workload.algoperf_loss_type]
        self.step_hint = info.step_hint
        self.max_allowed_runtime_sec = info.max_time_s
        self.target_metric_name = algoperf_metric_name(workload.config.target.metric).split("/")[1]
        self.validation_target_value = workload.config.target.value
        self.metrics_logger: Any = None
        names = {id(p): name for name, p in model.named_parameters()}
        keys = [names[id(p)] for p in groups.params]
        self.param_shapes = {
            k: spec.ShapeTuple(tuple(p.shape)) for k, p in zip(keys, groups.params, strict=True)
        }
        self.model_params_types = {
            k: spec.ParameterType[_parameter_type(model, k, role)]
            for k, role in zip(keys, groups.roles, strict=True)
        }
        self._output_keys = {k for k, r in zip(keys, groups.roles, strict=True) if r is Role.HEAD}
        self._step_loss: torch.Tensor | None = None

    @property
    def eval_period_time_sec(self) -> float:
        """optbench evaluates every `eval_every_steps` steps of the workload, not every N seconds.
        This is the time those steps take at the pace the budget assumes, `eval_every_steps ·
        max_allowed_runtime_sec / step_hint` (digits@smoke: 40 · 30 s / 320 = 3.75 s), so a
        submission that turns it back into steps with that pace, as AlgoPerf's LAWA submissions
        do, gets the workload's cadence. A denser cadence late in training
        (`eval_every_steps_late`) is not reflected."""
        steps = self._workload.config.eval_every_steps
        return steps * self.max_allowed_runtime_sec / self.step_hint

    @property
    def num_train_examples(self) -> int:
        """Examples in the workload's training split (`Workload.num_train_examples`)."""
        count = self._workload.num_train_examples()
        if count is None:
            raise _no_value(
                "num_train_examples",
                f"workload {self._workload.name} declares no "
                "count of training examples (its batches are windows of a token "
                "stream)",
            )
        return count

    @property
    def num_validation_examples(self) -> int:
        """Examples in the workload's held-out split (`Workload.num_eval_examples`)."""
        count = self._workload.num_eval_examples()
        if count is None:
            raise _no_value(
                "num_validation_examples",
                f"workload {self._workload.name} declares no count of held-out examples",
            )
        return count

    @property
    def test_target_value(self) -> float:
        raise _no_value("test_target_value", _ONE_SPLIT)

    @property
    def num_test_examples(self) -> int:
        raise _no_value("num_test_examples", _ONE_SPLIT)

    @property
    def num_eval_train_examples(self) -> int:
        raise _no_value(
            "num_eval_train_examples",
            "optbench evaluates no training split; "
            "train/loss is the mean training loss of the steps since the last eval",
        )

    @property
    def eval_batch_size(self) -> int:
        raise _no_value("eval_batch_size", _OWN_PIPELINE)

    @property
    def train_mean(self) -> Any:
        raise _no_value("train_mean", _OWN_PIPELINE)

    @property
    def train_stddev(self) -> Any:
        raise _no_value("train_stddev", _OWN_PIPELINE)

    def has_reached_validation_target(self, eval_result: Mapping[str, float]) -> bool:
        """Whether `eval_result` (AlgoPerf's `validation/<metric>` or optbench's metric name)
        meets the workload's target."""
        target = self._workload.config.target
        for key in (f"validation/{self.target_metric_name}", target.metric):
            if key in eval_result:
                return target.is_met(float(eval_result[key]))
        raise ContractError(
            f"workload.has_reached_validation_target: the eval result holds "
            f"neither validation/{self.target_metric_name} nor {target.metric}"
        )

    def has_reached_test_target(self, eval_result: Mapping[str, float]) -> bool:
        raise _no_value("has_reached_test_target", _ONE_SPLIT)

    def attach_metrics_logger(self, metrics_logger: Any) -> None:
        """Sets `metrics_logger` (optbench itself records every eval)."""
        self.metrics_logger = metrics_logger

    def is_output_params(self, param_key: str) -> bool:
        """Whether `param_key` names a parameter of the output layer (role `head`)."""
        return param_key in self._output_keys

    def output_activation_fn(self, logits_batch: torch.Tensor, framework: str) -> torch.Tensor:
        """Softmax over the last axis (softmax cross-entropy, CTC), sigmoid (sigmoid cross-entropy)
        or the identity (squared and absolute error) of `logits_batch`; `framework` must be
        `pytorch`, as optbench's models are."""
        if framework != "pytorch":
            raise _no_value(
                "output_activation_fn",
                f"framework {framework!r}: optbench's models "
                "are PyTorch models (framework='pytorch')",
            )
        kind = self.loss_type.name
        if kind in ("SOFTMAX_CROSS_ENTROPY", "CTC_LOSS"):
            return torch.softmax(logits_batch, dim=-1)
        if kind == "SIGMOID_CROSS_ENTROPY":
            return torch.sigmoid(logits_batch)
        return logits_batch

    def init_model_fn(self, *args: Any, **kwargs: Any) -> Any:
        raise _no_value(
            "init_model_fn",
            "optbench builds and initialises the model from the "
            "trial's seed; a submission gets it as current_param_container",
        )

    def _build_input_queue(self, *args: Any, **kwargs: Any) -> Any:
        raise _no_value(
            "_build_input_queue",
            "AlgoPerf's rules keep it from submissions; the "
            "step's batch comes through input_queue in data_selection",
        )

    def _eval_model_on_split(self, *args: Any, **kwargs: Any) -> Any:
        raise _no_value("_eval_model_on_split", _RUNNER_EVALUATES)

    def eval_model(self, *args: Any, **kwargs: Any) -> Any:
        raise _no_value("eval_model", _RUNNER_EVALUATES)

    def model_fn(
        self,
        params: torch.nn.Module,
        augmented_and_preprocessed_input_batch: dict[str, Any],
        model_state: Any,
        mode: Any,
        rng: Any,
        update_batch_norm: bool,
        dropout_rate: float | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """The model's output on the batch's `inputs`, and `model_state` unchanged.

        `mode` TRAIN runs train-mode layers with autograd; EVAL runs eval-mode layers under
        `torch.no_grad()`. BatchNorm statistics move only when `update_batch_norm` is True (in
        train mode). `rng` and `dropout_rate` are accepted and unused: optbench models fix their
        dropout, and their BatchNorm statistics live in the model (`model_state` stays None).
        """
        del rng, dropout_rate
        is_train = mode.name == "TRAIN"
        params.train(is_train)
        grad_mode = contextlib.nullcontext() if is_train else torch.no_grad()
        with grad_mode, _batch_norm_frozen(params, is_train and not update_batch_norm):
            output = self.view.algoperf_forward(
                params, augmented_and_preprocessed_input_batch["inputs"]
            )
        return output, model_state

    def loss_fn(
        self,
        label_batch: torch.Tensor,
        logits_batch: torch.Tensor,
        mask_batch: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        """`summed`, `n_valid_examples` and `per_example` losses (equations in the module
        docstring).

        The first call of each training step also records the step's loss for the runner.
        """
        per_example = self._per_example(label_batch, logits_batch, label_smoothing)
        if mask_batch is None:
            n_valid = per_example.new_full((), float(per_example.numel()))
        else:
            mask = mask_batch.to(per_example.dtype).reshape(per_example.shape)
            per_example = per_example * mask
            n_valid = mask.sum()
        summed = per_example.sum()
        if self._step_loss is None:
            self._step_loss = (summed / n_valid).detach()
        return {"summed": summed, "n_valid_examples": n_valid, "per_example": per_example}

    def _per_example(
        self, labels: torch.Tensor, logits: torch.Tensor, label_smoothing: float
    ) -> torch.Tensor:
        logits = logits.float()
        if self.loss_type.name == "MEAN_SQUARED_ERROR":
            return (logits - labels.float()).square().flatten(1).mean(dim=1)
        classes = logits.shape[-1]
        is_dense = labels.is_floating_point() and labels.shape == logits.shape  # one-hot / probs
        targets = labels.float().reshape(-1, classes) if is_dense else labels.reshape(-1)
        losses = F.cross_entropy(
            logits.reshape(-1, classes), targets, reduction="none", label_smoothing=label_smoothing
        )
        return losses.view(logits.shape[:-1])

    def start_step(self) -> None:
        """Forgets the last step's loss; the next `loss_fn` call records this step's."""
        self._step_loss = None

    def step_loss(self) -> torch.Tensor | None:
        """The detached mean loss of this step's first `loss_fn` call (None if there was none)."""
        return self._step_loss
