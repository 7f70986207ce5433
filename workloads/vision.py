"""Shared pieces of the 32x32 image workloads: data, deterministic batches, augmentation, TTA.

Data per scale:
  - `full`: CIFAR-10 as prepared by `optbench data prepare cifar10` (50,000 train / 10,000 test,
    uint8 NCHW; `workloads.datasets.cifar10_arrays`).
  - `smoke`: scikit-learn's bundled 8x8 digits with the `digits` workload's fixed split (1,437 train
    / 360 test), resized bilinearly to 32x32, replicated to 3 channels and stored as uint8, so the
    same models and augmentations run offline on a CPU. Cached as `<data_dir>/digits32/split.npz`.

Images are staged once on the device as float32 normalized with the training set's per-channel
mean and std. A step's batch is a pure function of (seed, step): epoch `e = step // steps_per_epoch`
visits the training set in the order `numpy.random.default_rng([seed, e]).permutation(n)` (the last
partial batch is dropped), and the augmentation draws come from `numpy.random.default_rng([seed,
step, 1])`. Augmentations are tensor code on the device (no torchvision).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.algoperf.view import AlgoPerfView
from harness.atomic import atomic_file
from harness.contract import Role
from harness.workload import (
    Budget,
    Precision,
    Target,
    ThroughputUnit,
    Workload,
    WorkloadConfig,
    roles_by_module,
)

__all__ = [
    "EpochBatches",
    "ImageClassification",
    "StagedImages",
    "conventional_role",
    "cutout",
    "digits32_arrays",
    "epoch_order",
    "flip",
    "image_arrays",
    "image_config",
    "stage_images",
    "translate",
]

Batch = tuple[torch.Tensor, torch.Tensor]
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # train x, train y, test x, test y


def digits32_arrays(data_dir: Path) -> Arrays:
    """The smoke images: digits' fixed split resized to (N, 3, 32, 32) uint8,
    cached on first use."""
    path = Path(data_dir) / "digits32" / "split.npz"
    if not path.is_file():
        from workloads.digits import fixed_split

        x_train, x_test, y_train, y_test = fixed_split(data_dir)

        def to_rgb32(x: np.ndarray) -> np.ndarray:
            small = torch.as_tensor(x, dtype=torch.float32).view(-1, 1, 8, 8)
            big = F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
            return (big.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).numpy()

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp, open(tmp, "wb") as f:  # a file: savez adds no suffix
            np.savez(
                f,
                x_train=to_rgb32(x_train),
                y_train=y_train.astype(np.uint8),
                x_test=to_rgb32(x_test),
                y_test=y_test.astype(np.uint8),
            )
    with np.load(path) as cached:
        return cached["x_train"], cached["y_train"], cached["x_test"], cached["y_test"]


def image_arrays(scale: str, data_dir: Path) -> Arrays:
    """uint8 NCHW train/test images and labels for `scale` (CIFAR-10 at full, digits32 at smoke)."""
    if scale == "smoke":
        return digits32_arrays(data_dir)
    from workloads.datasets import cifar10_arrays

    arrays = cifar10_arrays(data_dir)
    return arrays.train_images, arrays.train_labels, arrays.test_images, arrays.test_labels


def image_config(
    model: dict[str, Any],
    batch: int,
    max_steps: int,
    target: Target,
    max_time_s: float,
    every: int,
    late: int | None,
    precision: Precision,
) -> WorkloadConfig:
    """The config of an image workload: examples per step = batch, step hint = 80% of the budget."""
    return WorkloadConfig(
        target=target,
        budget=Budget(max_steps=max_steps, max_time_s=max_time_s, step_hint=round(0.8 * max_steps)),
        batch_size=batch,
        tokens_per_step=batch,
        throughput_unit=ThroughputUnit.EXAMPLES,
        eval_every_steps=every,
        eval_every_steps_late=late,
        precision=precision,
        model=tuple(model.items()),
    )


@dataclass(frozen=True, slots=True)
class StagedImages:
    """Normalized float32 images and int64 labels on the device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor  # per channel, of the training images in [0, 1]
    std: torch.Tensor


def stage_images(arrays: Arrays, device: torch.device) -> StagedImages:
    """Copies `arrays` to `device`, scaled to [0, 1] and normalized per channel."""
    x_train, y_train, x_test, y_test = arrays
    train = torch.from_numpy(np.array(x_train)).to(device).float().div_(255)  # copies a memmap
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True)
    test = torch.from_numpy(np.array(x_test)).to(device).float().div_(255)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(y, dtype=np.int64)).to(device)

    return StagedImages(
        (train - mean) / std, labels(y_train), (test - mean) / std, labels(y_test), mean, std
    )


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which epoch `epoch` visits `n` training examples under `seed`."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class EpochBatches:
    """Which training examples step s uses: batch `s mod steps_per_epoch` of epoch
    `s // steps_per_epoch` in `epoch_order(seed, epoch, n)`, the last partial batch dropped."""

    def __init__(self, seed: int, num_examples: int, batch_size: int, device: torch.device) -> None:
        self.seed, self.num_examples, self.batch_size = seed, num_examples, batch_size
        self.device = device
        self.steps_per_epoch = num_examples // batch_size
        self._order: tuple[int, torch.Tensor] | None = None  # the current epoch's, on the device

    def order(self, epoch: int) -> torch.Tensor:
        """The training-set order of `epoch` on the device (cached for the current epoch)."""
        if self._order is None or self._order[0] != epoch:
            order = epoch_order(self.seed, epoch, self.num_examples)
            self._order = (epoch, torch.as_tensor(order).to(self.device))
        return self._order[1]

    def indices(self, step: int) -> tuple[int, torch.Tensor]:
        """(epoch, the example indices of step `step`)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        start = position * self.batch_size
        return epoch, self.order(epoch)[start : start + self.batch_size]


def flip(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirrors left-right the images (B, C, H, W) where `mask` (B,) is True."""
    return torch.where(mask.view(-1, 1, 1, 1), images.flip(-1), images)


def translate(
    images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int, mode: str = "reflect"
) -> torch.Tensor:
    """Shifts each image by (dy, dx) in [-pad, pad] pixels: a random crop of the padded image.

    Args:
      images: (B, C, H, W).
      dy, dx: (B,) integer shifts.
      pad: padding on each side; `mode` is `reflect` or `constant` (zeros, i.e. the mean colour).
    """
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode=mode)
    rows = (pad + dy).view(b, 1, 1) + torch.arange(h, device=images.device).view(1, h, 1)
    cols = (pad + dx).view(b, 1, 1) + torch.arange(w, device=images.device).view(1, 1, w)
    batch = torch.arange(b, device=images.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def cutout(images: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: int) -> torch.Tensor:
    """Zeroes (the mean colour, after normalization) a size x size square centred at (cy, cx)."""
    _, _, h, w = images.shape
    ys = torch.arange(h, device=images.device).view(1, h, 1)
    xs = torch.arange(w, device=images.device).view(1, 1, w)
    top, left = (cy - size // 2).view(-1, 1, 1), (cx - size // 2).view(-1, 1, 1)
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
    return images.masked_fill(inside.unsqueeze(1), 0.0)


class ImageClassification(AlgoPerfView, Workload):
    """10-class 32x32 image classification; a subclass gives the model, augmentation and TTA.

    Subclasses define `build_net(settings)`, `role_of(model, module, param_name)` and
    `augment(images, step, epoch, index)`, and set `label_smoothing` and `tta_views`: a tuple of
    (weight, flip, dy, dx) test-time views whose weighted logits are summed (weights sum to 1).
    The training loss is cross-entropy with `label_smoothing`; the eval reports `test_accuracy`
    (the target metric) and `test_loss` (no smoothing) with TTA over the whole test set.
    """

    algoperf_loss_type: ClassVar[str] = "SOFTMAX_CROSS_ENTROPY"
    label_smoothing: ClassVar[float] = 0.0
    tta_views: ClassVar[tuple[tuple[float, bool, int, int], ...]] = ((1.0, False, 0, 0),)
    eval_batch_size: ClassVar[int] = 1000

    def build_net(self, settings: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def role_of(self, model: nn.Module, module: nn.Module, param_name: str) -> Role | None:
        raise NotImplementedError

    def augment(
        self, images: torch.Tensor, step: int, epoch: int, index: torch.Tensor
    ) -> torch.Tensor:
        """The training augmentation of batch `step` (images already normalized)."""
        return images

    def setup(self, device: torch.device, seed: int) -> None:
        self.device = torch.device(device)
        self.seed = seed
        self.images = stage_images(image_arrays(self.base_scale, self.data_dir), self.device)
        self.batches = EpochBatches(
            seed, len(self.images.train_y), self.config.batch_size, self.device
        )

    def num_train_examples(self) -> int:
        return len(self.images.train_y)

    def num_eval_examples(self) -> int:
        return len(self.images.test_y)

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return self.build_net(dict(self.config.model)).to(self.device)

    def param_roles(self, model: nn.Module) -> dict[str, Role]:
        return roles_by_module(model, lambda m, p: self.role_of(model, m, p), self.name)

    def augmentation_rng(self, step: int) -> np.random.Generator:
        """The generator of step `step`'s augmentation draws (a pure function of seed and step)."""
        return np.random.default_rng([self.seed, step, 1])

    def get_batch(self, step: int) -> Batch:
        epoch, index = self.batches.indices(step)
        images = self.augment(self.images.train_x[index], step, epoch, index)
        return images, self.images.train_y[index]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        images, labels = batch
        with self.autocast(self.device):
            logits = model(images)
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)

    def tta_logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The weighted sum of the logits of `tta_views` of `images`."""
        total = torch.zeros((), device=images.device)
        for weight, flipped, dy, dx in self.tta_views:
            view = images.flip(-1) if flipped else images
            if dy or dx:
                shift = torch.full((len(view),), 1, dtype=torch.int64, device=view.device)
                pad = max(abs(dy), abs(dx))
                view = translate(view, shift * dy, shift * dx, pad)
            with self.autocast(self.device):
                total = total + weight * model(view).float()
        return total

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        correct, loss_sum = 0.0, 0.0
        test_x, test_y = self.images.test_x, self.images.test_y
        for start in range(0, len(test_y), self.eval_batch_size):
            images = test_x[start : start + self.eval_batch_size]
            labels = test_y[start : start + self.eval_batch_size]
            logits = self.tta_logits(model, images)
            correct += float((logits.argmax(dim=1) == labels).sum())
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        return {"test_accuracy": correct / len(test_y), "test_loss": loss_sum / len(test_y)}


def conventional_role(module: nn.Module, param_name: str, head: nn.Module) -> Role | None:
    """Roles for conv/BN/linear nets: biases, norm gains, conv filters, hidden and head matrices."""
    if param_name == "bias":
        return Role.BIAS
    if isinstance(module, nn.BatchNorm2d | nn.LayerNorm | nn.GroupNorm):
        return Role.NORM
    if isinstance(module, nn.Conv2d):
        return Role.CONV
    if isinstance(module, nn.Linear):
        return Role.HEAD if module is head else Role.MATRIX
    return None
