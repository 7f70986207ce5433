"""AlgoPerf's `spec`: the enums, exception and type aliases its submissions use.

Submissions annotate with these aliases, and annotations are evaluated at import unless the module
uses `from __future__ import annotations`, so every alias AlgoPerf defines exists here. As in
AlgoPerf, most aliases are `Any`: they document, they do not check. `Workload` is the abstract type
submissions annotate `workload` with; optbench passes `harness.algoperf_adapter.AlgoPerfWorkload`.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "DataSelectionFn",
    "ForwardPassMode",
    "Hyperparameters",
    "InitOptimizerFn",
    "LossType",
    "ModelAuxiliaryState",
    "ModelInitState",
    "OptimizerState",
    "ParameterContainer",
    "ParameterKey",
    "ParameterShapeTree",
    "ParameterType",
    "ParameterTypeTree",
    "PrepareForEvalFn",
    "RandomState",
    "Shape",
    "ShapeTuple",
    "Steps",
    "Tensor",
    "Timing",
    "TrainingCompleteError",
    "UpdateParamsFn",
    "UpdateReturn",
    "Workload",
]


class LossType(enum.Enum):
    """The loss a workload trains with (`workload.loss_type`, `update_params(loss_type=...)`)."""

    SOFTMAX_CROSS_ENTROPY = 0
    SIGMOID_CROSS_ENTROPY = 1
    MEAN_SQUARED_ERROR = 2
    CTC_LOSS = 3
    MEAN_ABSOLUTE_ERROR = 4


class ForwardPassMode(enum.Enum):
    """`workload.model_fn(mode=...)`: training (autograd, train-mode layers) or evaluation."""

    TRAIN = 0
    EVAL = 1


class ParameterType(enum.Enum):
    """What a parameter is (`workload.model_params_types`), AlgoPerf's analogue of optbench roles."""

    WEIGHT = 0
    BIAS = 1
    CONV_WEIGHT = 2
    BATCH_NORM_SCALE = 3
    BATCH_NORM_BIAS = 4
    LAYER_NORM_SCALE = 5
    LAYER_NORM_BIAS = 6
    EMBEDDING = 7
    ATTENTION_Q = 8
    ATTENTION_K = 9
    ATTENTION_V = 10
    ATTENTION_OUT = 11
    ATTENTION_QKV = 12
    ATTENTION_KV = 13
    ATTENTION_BIAS = 14
    DLRM_BOTTOM = 15
    DLRM_TOP = 16


class TrainingCompleteError(Exception):
    """Raised by `update_params` to end training early; optbench then evaluates once more and
    records the trial as finished (`budget_exhausted`, or `target_reached` if it was)."""


class ShapeTuple:
    """A parameter's shape, wrapped so tree utilities treat it as one leaf (`param_shapes`)."""

    def __init__(self, shape_tuple: tuple[int, ...]) -> None:
        self.shape_tuple = tuple(shape_tuple)

    def __repr__(self) -> str:
        return f"ShapeTuple({self.shape_tuple})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShapeTuple) and self.shape_tuple == other.shape_tuple

    def __hash__(self) -> int:
        return hash(self.shape_tuple)


class Workload(abc.ABC):  # noqa: B024 (only a type here: optbench's adapter registers with it)
    """The type submissions annotate `workload` with (AlgoPerf's abstract base class).

    What a submission may use on the object it is given: `model_fn`, `loss_fn`, `loss_type`,
    `param_shapes`, `model_params_types`, `step_hint`, `max_allowed_runtime_sec`,
    `target_metric_name`, `is_output_params` and `metrics_logger`.
    """


Tensor = Any
Shape = tuple[int, ...] | ShapeTuple
ParameterKey = str
ParameterShapeTree = dict[str, Any]
ParameterContainer = Any  # the torch.nn.Module in PyTorch submissions
ParameterTypeTree = dict[str, Any]
RandomState = Any  # optbench passes a numpy uint32 array of shape (2,)
OptimizerState = Any
Hyperparameters = Any  # a namedtuple of the trial's search-space point
Timing = int
Steps = int
ModelAuxiliaryState = Any
ModelInitState = tuple[ParameterContainer, ModelAuxiliaryState]
UpdateReturn = tuple[OptimizerState, ParameterContainer, ModelAuxiliaryState]
InitOptimizerFn = Callable[..., OptimizerState]
UpdateParamsFn = Callable[..., UpdateReturn]
PrepareForEvalFn = Callable[..., UpdateReturn]
DataSelectionFn = Callable[[Workload, Iterator[dict[str, Any]], Any, Any, Any, Any, int, Any],
                           dict[str, Tensor]]  # fmt: skip
