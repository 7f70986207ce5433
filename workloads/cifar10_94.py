"""CIFAR-10 to 94%: an airbench-style network; metric: test accuracy with 6-view TTA.

Model (airbench94's network; the optimizer is the submission's)::

    x (B, 3, 32, 32), normalized
    -> whiten: conv2x2(3 -> 24, bias), weights frozen        31x31
       filters = [V / sqrt(λ + 5e-4), -V / sqrt(λ + 5e-4)] for the eigenpairs (λ, V) of the
       covariance of all 2x2x3 patches of the first 5,000 training images
    -> GELU
    -> 3 conv groups of widths (64, 256, 256), each:
       conv3x3 (no bias) -> maxpool2 -> BN -> GELU -> conv3x3 (no bias) -> BN -> GELU   15, 7, 3
    -> global max pool -> linear(256 -> 10, no bias) -> x / 9

BatchNorm as in airbench: gain frozen at 1, trainable shift, momentum 0.4, eps 1e-12. Roles:
conv filters CONV, BN shifts and the whitening bias BIAS, the linear HEAD (the frozen whitening
filters and BN gains are not trainable, so no optimizer sees them).

Training: label smoothing 0.2; augmentation on the device: random translation by up to 2 pixels
(reflect padding, one (dy, dx) per image per step) and airbench's alternating flip: each image gets
a random flip bit from the seed, used in even epochs and inverted in odd ones, so every image is
seen both ways in any two consecutive epochs. Eval: test accuracy of the weighted logits of 6
views: the image and its mirror (weight 1/4 each) and both translated by (-1, -1) and (+1, +1)
with reflect padding (1/8 each).

Scales: `full` is the CIFAR-10 benchmark (batch 1024, 12 epochs = 576 steps; target 94.0% mean
over 5 seeds, provisional until calibrated on a GPU). `smoke` runs the same network at widths
(16, 32, 32) on the digits32 images (`workloads.vision`) on a CPU; target from
`workloads/CALIBRATION.md`. Ladders of widths (`ladders`, fixed-resource and scaling studies):
`smoke-xs` .. `smoke-l` and `full-xs` .. `full-l`, whose `-m` rung is the base scale's network, on
the base scale's data, target and budget; batch variants `<rung>-b<batch>` (`ladder_batches`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from harness.contract import Role
from harness.workload import Direction, Precision, Target, WorkloadConfig, ladder_configs
from workloads.vision import (
    ImageClassification,
    conventional_role,
    flip,
    image_config,
    translate,
)

__all__ = ["AirbenchNet", "Cifar10At94"]

_WHITEN_PATCHES_FROM = 5000
_WHITEN_EPS = 5e-4


class _BatchNorm(nn.BatchNorm2d):
    """airbench's BatchNorm: frozen unit gain, trainable shift."""

    def __init__(self, width: int) -> None:
        super().__init__(width, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(False)


class _ConvGroup(nn.Module):
    def __init__(self, width_in: int, width_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width_in, width_out, 3, padding=1, bias=False)
        self.norm1 = _BatchNorm(width_out)
        self.conv2 = nn.Conv2d(width_out, width_out, 3, padding=1, bias=False)
        self.norm2 = _BatchNorm(width_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """The network drawn in the module docstring; call `init_whitening` before training."""

    def __init__(
        self, widths: tuple[int, int, int] = (64, 256, 256), num_classes: int = 10
    ) -> None:
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(
            _ConvGroup(24, widths[0]),
            _ConvGroup(widths[0], widths[1]),
            _ConvGroup(widths[1], widths[2]),
        )
        self.head = nn.Linear(widths[2], num_classes, bias=False)

    @torch.no_grad()
    def init_whitening(self, train_images: torch.Tensor) -> None:
        """Sets the frozen 2x2 filters from the patch covariance of
        `train_images` (B, 3, 32, 32)."""
        patches = train_images.float().unfold(2, 2, 1).unfold(3, 2, 1)  # B, 3, 31, 31, 2, 2
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
        patches = patches - patches.mean(dim=0)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + _WHITEN_EPS)[:, None]).view(
            12, 3, 2, 2
        )
        self.whiten.weight.copy_(torch.cat((filters, -filters)))
        assert self.whiten.bias is not None
        self.whiten.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(F.gelu(self.whiten(x)))
        return self.head(x.amax(dim=(2, 3))) / 9.0


class Cifar10At94(ImageClassification):
    """CIFAR-10 to 94% test accuracy (see the module docstring)."""

    name: ClassVar[str] = "cifar10-94"
    version: ClassVar[int] = 1
    configs: ClassVar[dict[str, WorkloadConfig]] = {
        "full": image_config(
            {"widths": (64, 256, 256)},
            batch=1024,
            max_steps=12 * (50_000 // 1024),
            target=Target("test_accuracy", 0.94, Direction.MAX, seeds=5, provisional=True),
            max_time_s=120.0,
            every=48,
            late=8,
            precision=Precision.BF16_AUTOCAST,
        ),
        "smoke": image_config(
            {"widths": (16, 32, 32)},
            batch=64,
            max_steps=12 * (1437 // 64),
            target=Target("test_accuracy", 0.983, Direction.MAX, seeds=1),
            max_time_s=30.0,
            every=44,
            late=22,
            precision=Precision.FP32,
        ),
    }
    # Width ladders (fixed-resource and scaling studies); trainable parameters in comments.
    ladders: ClassVar[dict[str, tuple[str, ...]]] = {
        "smoke": ("smoke-xs", "smoke-s", "smoke-m", "smoke-l"),
        "full": ("full-xs", "full-s", "full-m", "full-l"),
    }
    ladder_batches: ClassVar[dict[str, tuple[int, ...]]] = {
        "smoke": (32, 64, 128),
        "full": (512, 1024, 2048),
    }
    configs |= ladder_configs(
        configs,
        ladders,
        ladder_batches,
        {
            "smoke-xs": {"widths": (8, 16, 16)},  # 11k
            "smoke-s": {"widths": (12, 24, 24)},  # 22k
            "smoke-m": {"widths": (16, 32, 32)},  # 39k: smoke's
            "smoke-l": {"widths": (24, 48, 48)},  # 84k
            "full-xs": {"widths": (32, 64, 64)},  # 146k
            "full-s": {"widths": (48, 128, 128)},  # 531k
            "full-m": {"widths": (64, 256, 256)},  # 1.97M: full's
            "full-l": {"widths": (128, 384, 512)},  # 6.08M: airbench96's widths
        },
    )
    reference_hparams: ClassVar[dict[str, dict[str, float]]] = {
        "full": {"lr": 3e-3, "weight_decay": 0.05, "beta1": 0.9, "warmup_frac": 0.05},
        "smoke": {"lr": 3e-3, "weight_decay": 0.05, "beta1": 0.9, "warmup_frac": 0.05},
    }
    label_smoothing: ClassVar[float] = 0.2
    tta_views: ClassVar[tuple[tuple[float, bool, int, int], ...]] = (
        (0.25, False, 0, 0),
        (0.25, True, 0, 0),
        (0.125, False, -1, -1),
        (0.125, True, -1, -1),
        (0.125, False, 1, 1),
        (0.125, True, 1, 1),
    )

    def build_net(self, settings: dict[str, Any]) -> nn.Module:
        net = AirbenchNet(tuple(settings["widths"])).to(self.device)
        net.init_whitening(self.images.train_x[:_WHITEN_PATCHES_FROM])
        return net

    def role_of(self, model: nn.Module, module: nn.Module, param_name: str) -> Role | None:
        assert isinstance(model, AirbenchNet)
        return conventional_role(module, param_name, model.head)

    def setup(self, device: torch.device, seed: int) -> None:
        super().setup(device, seed)
        bits = torch.Generator().manual_seed(seed)
        # Each training image's flip bit for even epochs (odd epochs use its inverse).
        self.flip_bits = (torch.rand(len(self.images.train_y), generator=bits) < 0.5).to(
            self.device
        )

    def augment(
        self, images: torch.Tensor, step: int, epoch: int, index: torch.Tensor
    ) -> torch.Tensor:
        rng = self.augmentation_rng(step)
        shifts = torch.as_tensor(rng.integers(-2, 3, size=(2, len(index)))).to(self.device)
        flips = self.flip_bits[index] ^ bool(epoch % 2)
        return translate(flip(images, flips), shifts[0], shifts[1], pad=2)
