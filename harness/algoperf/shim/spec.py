"""AlgoPerf's `spec`: the enums, exception and type aliases its submissions use.

Submissions annotate with these aliases, and annotations are evaluated at import unless the module
uses `from __future__ import annotations`, so every alias AlgoPerf defines exists here. As in
AlgoPerf, most aliases are `Any`: they document, they do not check. `Workload` is the abstract type
submissions annotate `workload` with, with AlgoPerf's members; optbench passes
`harness.algoperf.adapter.AlgoPerfWorkload`.
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
    """What a parameter is (`workload.model_params_types`), AlgoPerf's analogue of optbench
    roles."""

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


class Workload(abc.ABC):
    """The type submissions annotate `workload` with: AlgoPerf's abstract workload,
    member for member.

    optbench passes `harness.algoperf.adapter.AlgoPerfWorkload` (registered as a virtual subclass),
    which gives each member optbench's value or raises `ContractError` naming the member and why
    optbench has none. The members are AlgoPerf 0.6's (`algoperf/spec.py`), so a test can walk
    them: properties first, then methods.
    """

    metrics_logger: Any = None  # AlgoPerf's logger, None when nothing logs

    # -- properties ---------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def target_metric_name(self) -> str:
        """The target metric without its split (`accuracy`, `loss`)."""

    @property
    @abc.abstractmethod
    def validation_target_value(self) -> float:
        """The value of the target metric on the validation split that counts as reached."""

    @property
    @abc.abstractmethod
    def test_target_value(self) -> float:
        """The value of the target metric on the test split that counts as reached."""

    @property
    @abc.abstractmethod
    def loss_type(self) -> LossType:
        """The loss `loss_fn` computes."""

    @property
    @abc.abstractmethod
    def num_train_examples(self) -> int:
        """Examples in the training split."""

    @property
    @abc.abstractmethod
    def eval_batch_size(self) -> int:
        """Examples per batch when the runner evaluates."""

    @property
    @abc.abstractmethod
    def num_eval_train_examples(self) -> int:
        """Training examples the runner evaluates the metrics on."""

    @property
    @abc.abstractmethod
    def num_validation_examples(self) -> int:
        """Examples in the validation split."""

    @property
    @abc.abstractmethod
    def num_test_examples(self) -> int:
        """Examples in the test split."""

    @property
    @abc.abstractmethod
    def train_mean(self) -> Any:
        """The training inputs' mean, as the input pipeline normalises with it."""

    @property
    @abc.abstractmethod
    def train_stddev(self) -> Any:
        """The training inputs' standard deviation, as the input pipeline normalises with it."""

    @property
    @abc.abstractmethod
    def max_allowed_runtime_sec(self) -> float:
        """The timed-training budget in seconds."""

    @property
    @abc.abstractmethod
    def eval_period_time_sec(self) -> float:
        """Seconds of training between two evaluations."""

    @property
    @abc.abstractmethod
    def step_hint(self) -> int:
        """Steps a tuned baseline takes within the budget; schedules are sized by it."""

    @property
    @abc.abstractmethod
    def param_shapes(self) -> ParameterShapeTree:
        """`{parameter name: ShapeTuple}` of the model's parameters."""

    @property
    @abc.abstractmethod
    def model_params_types(self) -> ParameterTypeTree:
        """`{parameter name: ParameterType}` of the model's parameters."""

    # -- methods ------------------------------------------------------------------------------
    @abc.abstractmethod
    def has_reached_validation_target(self, eval_result: dict[str, float]) -> bool:
        """Whether an eval's metrics meet the validation target."""

    @abc.abstractmethod
    def has_reached_test_target(self, eval_result: dict[str, float]) -> bool:
        """Whether an eval's metrics meet the test target."""

    @abc.abstractmethod
    def _build_input_queue(
        self,
        data_rng: Any,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: bool | None = None,
        repeat_final_dataset: bool | None = None,
        num_batches: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The runner's data pipeline; AlgoPerf's rules forbid submissions to call it."""

    def attach_metrics_logger(self, metrics_logger: Any) -> None:
        """Sets `metrics_logger`."""
        self.metrics_logger = metrics_logger

    @abc.abstractmethod
    def is_output_params(self, param_key: str) -> bool:
        """Whether `param_key` names a parameter of the output layer."""

    @abc.abstractmethod
    def init_model_fn(self, rng: Any) -> tuple[Any, Any]:
        """(initial parameters, initial model state) from `rng`."""

    @abc.abstractmethod
    def model_fn(
        self,
        params: Any,
        augmented_and_preprocessed_input_batch: dict[str, Any],
        model_state: Any,
        mode: ForwardPassMode,
        rng: Any,
        update_batch_norm: bool,
        dropout_rate: float,
    ) -> tuple[Any, Any]:
        """(model output, new model state) on a batch."""

    @abc.abstractmethod
    def output_activation_fn(self, logits_batch: Any, framework: str) -> Any:
        """Logits to probabilities (or predictions), as the loss type implies."""

    @abc.abstractmethod
    def loss_fn(
        self,
        label_batch: Any,
        logits_batch: Any,
        mask_batch: Any = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, Any]:
        """`{"summed", "n_valid_examples", "per_example"}` losses of a batch."""

    @abc.abstractmethod
    def _eval_model_on_split(
        self,
        split: str,
        num_examples: int,
        global_batch_size: int,
        params: Any,
        model_state: Any,
        rng: Any,
        data_dir: str,
        global_step: int = 0,
    ) -> dict[str, float]:
        """The metrics on one split (the runner's evaluation)."""

    @abc.abstractmethod
    def eval_model(
        self,
        global_batch_size: int,
        params: Any,
        model_state: Any,
        rng: Any,
        data_dir: str,
        imagenet_v2_data_dir: str | None,
        global_step: int,
    ) -> dict[str, float]:
        """The metrics on every split (the runner's evaluation)."""


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
DataSelectionFn = Callable[
    [Workload, Iterator[dict[str, Any]], Any, Any, Any, Any, int, Any], dict[str, Tensor]
]
