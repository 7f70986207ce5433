"""Digits: a small CNN on scikit-learn's bundled 8x8 handwritten digits; metric: test accuracy.

Data: `sklearn.datasets.load_digits` (1797 real images, 10 classes, pixel values 0..16, offline),
split once and cached under the data folder.
A fixed stratified split (`train_test_split(..., test_size=360, stratify=y, random_state=0)`,
independent of the trial seed) gives 1437 training and 360 test images. Pixels are scaled to
x / 16, then standardized with the training set's mean and std (one scalar each).

Model::

    x (B, 1, 8, 8)
    -> conv3x3(1 -> 16, no bias) -> BatchNorm -> ReLU          8x8
    -> conv3x3(16 -> 32, no bias) -> BatchNorm -> ReLU -> maxpool2   4x4
    -> flatten (512) -> linear(512 -> 64) -> ReLU -> linear(64 -> 10)

Roles: conv filters CONV, BatchNorm gains NORM, BatchNorm shifts and linear biases BIAS, the hidden
linear weight MATRIX, the last linear's weight HEAD.

Batches: epoch e = step // steps_per_epoch visits the training set in the order
`numpy.random.default_rng([seed, e]).permutation(1437)`; step s takes the slice of `batch_size`
indices at position `(s mod steps_per_epoch) * batch_size` (the last partial batch of an epoch is
dropped), and shifts each image by (dy, dx) in {-1, 0, 1}^2 pixels, drawn from
`numpy.random.default_rng([seed, s])` (the 9 shifted copies of the training set are staged once,
padded with the background value). So a batch is a pure function of (seed, step). Without the
shifts the test accuracy plateaus after ~5 epochs; with them it keeps rising for ~15.

Loss: mean cross-entropy. Eval: `test_accuracy` (the target metric) and `test_loss` on all 360 test
images. Calibration of the target: `workloads/CALIBRATION.md`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.algoperf.view import AlgoPerfView
from harness.atomic import atomic_file
from harness.contract import Role
from harness.errors import ContractError
from harness.workload import (
    Budget,
    Direction,
    Precision,
    Target,
    ThroughputUnit,
    Workload,
    WorkloadConfig,
    roles_by_module,
)

__all__ = ["Digits", "DigitsCNN", "fixed_split"]

Batch = tuple[torch.Tensor, torch.Tensor]

_TEST_SIZE = 360
_SPLIT_SEED = 0


class DigitsCNN(nn.Module):
    """The CNN drawn in the module docstring; `width` is the first conv's channel count."""

    def __init__(self, width: int = 16, hidden: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width * 4 * 4, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x_B1HW: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) for images (B, 1, 8, 8)."""
        x = F.relu(self.bn1(self.conv1(x_B1HW)))
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.fc(x.flatten(1)))
        return self.head(x)


def fixed_split(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed train/test split, cached as `<data_dir>/digits/split.npz` on first use.

    Importing scikit-learn takes seconds, so only the first trial on a machine pays it; the cache
    is written atomically, so concurrent first trials can race safely.
    """
    path = Path(data_dir) / "digits" / "split.npz"
    if not path.is_file():
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        images, labels = load_digits(return_X_y=True)
        parts = train_test_split(
            images / 16.0, labels, test_size=_TEST_SIZE, stratify=labels, random_state=_SPLIT_SEED
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp, open(tmp, "wb") as f:  # a file: savez adds no suffix
            np.savez(f, x_train=parts[0], x_test=parts[1], y_train=parts[2], y_test=parts[3])
    with np.load(path) as cached:
        return cached["x_train"], cached["x_test"], cached["y_train"], cached["y_test"]


class Digits(AlgoPerfView, Workload):
    """8x8 digit classification (see the module docstring)."""

    name: ClassVar[str] = "digits"
    version: ClassVar[int] = 1
    configs: ClassVar[dict[str, WorkloadConfig]] = {
        "smoke": WorkloadConfig(
            target=Target(metric="test_accuracy", value=0.994, direction=Direction.MAX, seeds=1),
            budget=Budget(max_steps=400, max_time_s=30.0, step_hint=320),
            batch_size=64,
            tokens_per_step=64,
            throughput_unit=ThroughputUnit.EXAMPLES,
            eval_every_steps=40,
            precision=Precision.FP32,
            model=(("width", 16), ("hidden", 64)),
        ),
    }
    algoperf_loss_type: ClassVar[str] = "SOFTMAX_CROSS_ENTROPY"
    reference_hparams: ClassVar[dict[str, dict[str, float]]] = {
        "smoke": {"lr": 3e-3, "weight_decay": 0.05, "beta1": 0.9, "warmup_frac": 0.05},
    }

    def setup(self, device: torch.device, seed: int) -> None:
        self.device = torch.device(device)
        self.seed = seed
        x_train, x_test, y_train, y_test = fixed_split(self.data_dir)
        mean, std = x_train.mean(), x_train.std()

        def stage(x: np.ndarray) -> torch.Tensor:
            x_t = torch.as_tensor((x - mean) / std, dtype=torch.float32).view(-1, 1, 8, 8)
            return x_t.to(self.device)

        # All 9 one-pixel translations of the training images, padded with the background value.
        padded = F.pad(stage(x_train), (1, 1, 1, 1), value=float(-mean / std))
        shifted = [padded[:, :, dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3)]
        self._train_shifted = torch.stack(shifted)  # (9, N, 1, 8, 8); index 4 is the original
        self._train_labels = torch.as_tensor(y_train, dtype=torch.int64).to(self.device)
        self._test = stage(x_test), torch.as_tensor(y_test, dtype=torch.int64).to(self.device)
        self._steps_per_epoch = len(y_train) // self.config.batch_size
        self._epoch_order: tuple[int, torch.Tensor] | None = None

    def num_train_examples(self) -> int:
        return len(self._train_labels)

    def num_eval_examples(self) -> int:
        return len(self._test[1])

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model_settings = dict(self.config.model)
        return DigitsCNN(width=model_settings["width"], hidden=model_settings["hidden"]).to(
            self.device
        )

    def param_roles(self, model: nn.Module) -> dict[str, Role]:
        if not isinstance(model, DigitsCNN):
            raise ContractError(f"digits: param_roles needs a DigitsCNN, got {type(model)}")

        def role_of(module: nn.Module, param_name: str) -> Role | None:
            if param_name == "bias":
                return Role.BIAS
            if isinstance(module, nn.Conv2d):
                return Role.CONV
            if isinstance(module, nn.BatchNorm2d):
                return Role.NORM
            if module is model.head:
                return Role.HEAD
            return Role.MATRIX if isinstance(module, nn.Linear) else None

        return roles_by_module(model, role_of, self.name)

    def _order(self, epoch: int) -> torch.Tensor:
        """The training-set order of `epoch` for this trial's seed
        (cached for the current epoch)."""
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            perm = np.random.default_rng([self.seed, epoch]).permutation(len(self._train_labels))
            self._epoch_order = (epoch, torch.as_tensor(perm).to(self.device))
        return self._epoch_order[1]

    def get_batch(self, step: int) -> Batch:
        epoch, position = divmod(step, self._steps_per_epoch)
        start = position * self.config.batch_size
        index = self._order(epoch)[start : start + self.config.batch_size]
        shift = np.random.default_rng([self.seed, step]).integers(9, size=len(index))
        shift_t = torch.as_tensor(shift).to(self.device)
        return self._train_shifted[shift_t, index], self._train_labels[index]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(model(images), labels)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        images, labels = self._test
        logits = model(images)
        return {
            "test_accuracy": float((logits.argmax(dim=1) == labels).float().mean()),
            "test_loss": float(F.cross_entropy(logits, labels)),
        }
