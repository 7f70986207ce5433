"""ResNet-18 on CIFAR-10: the standard CIFAR ResNet-18; metric: test accuracy with flip TTA.

Model (the widely used CIFAR form of ResNet-18, as in kuangliu/pytorch-cifar; conv layers carry
no bias)::

    x (B, 3, 32, 32), normalized
    -> conv3x3(3 -> w0, stride 1) -> BN -> ReLU                               32x32
    -> 4 stages of widths (w0, w1, w2, w3) = (64, 128, 256, 512), strides (1, 2, 2, 2),
       each of `blocks` = 2 BasicBlocks:                                      32, 16, 8, 4
         y = ReLU(BN(conv3x3(x, stride s)))
         y = BN(conv3x3(y))
         out = ReLU(y + shortcut(x))
       shortcut = conv1x1(stride s) -> BN where the shape changes, else the identity
    -> global average pool (w3) -> linear(w3 -> 10, with bias)

11,173,962 parameters at full. Roles: conv filters CONV, BN gains NORM, BN shifts and the head's
bias BIAS, the linear's weight HEAD. BatchNorm uses torch's defaults (momentum 0.1, eps 1e-5).

Training: cross-entropy without label smoothing. Augmentation on the device, per image per step,
drawn from `numpy.random.default_rng([seed, step, 1])`: a left-right flip with probability 1/2;
a translation by (dy, dx) uniform in [-4, 4]^2, i.e. a random 32x32 crop of the image padded by
4 pixels with zeros (the common random-crop recipe; after normalization zero is the mean colour,
not black); then cutout: a 12x12 square set to zero, its centre uniform over the 32x32 pixels and
the square clipped at the borders (so near an edge less than 12x12 is cut). Eval: test accuracy
of the mean logits of the image and its mirror (weights 1/2, 1/2).

Scales:
  - `full`: CIFAR-10, batch 500, 40 epochs (100 steps each, 4,000 steps), bf16 autocast on a GPU;
    eval every 100 steps (one epoch), every 20 in the last 10% of the budget. Target test accuracy
    0.94, mean over 3 seeds: provisional until `optbench calibrate resnet18-cifar10 --scale full`
    has run on the GPU class (the reference AdamW reaches it in >= 95% of seeds by 80% of the
    budget); `max_time_s` 900 is generous for a current data-centre GPU.
  - `smoke`: the same classes at widths (8, 16, 32, 64) with one BasicBlock per stage (two cost
    ~1.5x per step, more than the 30 s trial allows) on the digits32 images (`workloads.vision`),
    batch 64, 10 epochs (22 steps each, 220 steps), eval every 22 steps, every 11 in the last 10%;
    fp32 on one CPU thread; same augmentation and TTA. Target from `workloads/CALIBRATION.md`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from harness.contract import Role
from harness.workload import Direction, Precision, Target, WorkloadConfig
from workloads.vision import (
    ImageClassification,
    conventional_role,
    cutout,
    flip,
    image_config,
    translate,
)

__all__ = ["BasicBlock", "ResNet18", "ResNet18Cifar10"]

_TRANSLATE_PX = 4
_CUTOUT_PX = 12


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN and a skip: ReLU(BN(conv(ReLU(BN(conv x)))) + shortcut(x))."""

    def __init__(self, width_in: int, width_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width_in, width_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width_out)
        self.conv2 = nn.Conv2d(width_out, width_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or width_in != width_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(width_in, width_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(width_out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet18(nn.Module):
    """The CIFAR ResNet drawn in the module docstring.

    Args:
      widths: the four stages' widths (the stem has the first).
      blocks: BasicBlocks per stage (ResNet-18: 2 each).
      num_classes: outputs of the head.
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError(f"ResNet18 needs 4 stage widths and block counts: {widths}, {blocks}")
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages: list[nn.Module] = []
        width_in = widths[0]
        for width, count, stride in zip(widths, blocks, (1, 2, 2, 2), strict=True):
            strides = [stride] + [1] * (count - 1)
            stages.append(
                nn.Sequential(
                    *(
                        BasicBlock(width_in if i == 0 else width, width, s)
                        for i, s in enumerate(strides)
                    )
                )
            )
            width_in = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(F.relu(self.bn1(self.conv1(x))))
        return self.head(x.mean(dim=(2, 3)))


class ResNet18Cifar10(ImageClassification):
    """ResNet-18 on CIFAR-10 to 94% test accuracy (see the module docstring)."""

    name: ClassVar[str] = "resnet18-cifar10"
    version: ClassVar[int] = 1
    configs: ClassVar[dict[str, WorkloadConfig]] = {
        "full": image_config(
            {"widths": (64, 128, 256, 512), "blocks": (2, 2, 2, 2)},
            batch=500,
            max_steps=40 * (50_000 // 500),
            target=Target("test_accuracy", 0.94, Direction.MAX, seeds=3, provisional=True),
            max_time_s=900.0,
            every=100,
            late=20,
            precision=Precision.BF16_AUTOCAST,
        ),
        "smoke": image_config(
            {"widths": (8, 16, 32, 64), "blocks": (1, 1, 1, 1)},
            batch=64,
            max_steps=10 * (1437 // 64),
            target=Target("test_accuracy", 0.95, Direction.MAX, seeds=1),
            max_time_s=30.0,
            every=22,
            late=11,
            precision=Precision.FP32,
        ),
    }
    reference_hparams: ClassVar[dict[str, dict[str, float]]] = {
        "full": {"lr": 3e-3, "weight_decay": 0.05, "beta1": 0.9, "warmup_frac": 0.05},
        "smoke": {"lr": 3e-3, "weight_decay": 0.05, "beta1": 0.9, "warmup_frac": 0.05},
    }
    label_smoothing: ClassVar[float] = 0.0
    tta_views: ClassVar[tuple[tuple[float, bool, int, int], ...]] = (
        (0.5, False, 0, 0),
        (0.5, True, 0, 0),
    )

    def build_net(self, settings: dict[str, Any]) -> nn.Module:
        return ResNet18(tuple(settings["widths"]), tuple(settings["blocks"]))

    def role_of(self, model: nn.Module, module: nn.Module, param_name: str) -> Role | None:
        assert isinstance(model, ResNet18)
        return conventional_role(module, param_name, model.head)

    def augment(
        self, images: torch.Tensor, step: int, epoch: int, index: torch.Tensor
    ) -> torch.Tensor:
        """Flip, zero-padded translation by up to 4 pixels, then a 12x12 cutout, per image."""
        rng = self.augmentation_rng(step)
        b, _, h, w = images.shape
        flips = torch.as_tensor(rng.random(b) < 0.5).to(self.device)
        shifts = torch.as_tensor(rng.integers(-_TRANSLATE_PX, _TRANSLATE_PX + 1, size=(2, b)))
        centres = torch.as_tensor(rng.integers(0, (h, w), size=(b, 2)).T)
        shifts, centres = shifts.to(self.device), centres.to(self.device)
        moved = translate(flip(images, flips), shifts[0], shifts[1], _TRANSLATE_PX, "constant")
        return cutout(moved, centres[0], centres[1], _CUTOUT_PX)
