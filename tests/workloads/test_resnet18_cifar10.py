"""The resnet18-cifar10 workload: model sizes and roles, batches, augmentation, TTA, eval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.contract import Role
from harness.workload import Direction
from workloads.resnet18_cifar10 import BasicBlock, ResNet18, ResNet18Cifar10

CPU = torch.device("cpu")


def _workload(data_dir: Path, scale: str = "smoke", seed: int = 0) -> ResNet18Cifar10:
    workload = ResNet18Cifar10(scale, data_dir)
    workload.setup(CPU, seed)
    return workload


def test_full_model_is_the_cifar_resnet18(fake_cifar_dir: Path) -> None:
    workload = _workload(fake_cifar_dir, "full")
    model = workload.build_model(seed=0)
    assert isinstance(model, ResNet18)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962  # kuangliu's ResNet18()
    assert model(workload.images.test_x[:2]).shape == (2, 10)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    assert [b.conv1.stride[0] for b in blocks] == [1, 1, 2, 1, 2, 1, 2, 1]
    shortcuts = [isinstance(b.shortcut, torch.nn.Sequential) for b in blocks]
    assert shortcuts == [False, False, True, False, True, False, True, False]
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_smoke_model_is_the_same_classes_at_small_width(data_dir: Path) -> None:
    workload = _workload(data_dir)
    model = workload.build_model(seed=0)
    assert dict(workload.config.model) == {"widths": (8, 16, 32, 64), "blocks": (1, 1, 1, 1)}
    assert sum(p.numel() for p in model.parameters()) == 78_002
    assert len([m for m in model.modules() if isinstance(m, BasicBlock)]) == 4
    assert model.head.in_features == 64


@pytest.mark.parametrize("scale", ["smoke", "full"])
def test_roles_by_kind_of_parameter(scale: str, data_dir: Path, fake_cifar_dir: Path) -> None:
    workload = _workload(data_dir if scale == "smoke" else fake_cifar_dir, scale)
    model = workload.build_model(seed=0)
    groups = workload.param_groups(model)  # raises unless every parameter has one role
    assert len(groups) == len(list(model.parameters()))
    roles = workload.param_roles(model)
    assert set(roles.values()) == {Role.CONV, Role.NORM, Role.BIAS, Role.HEAD}
    assert roles["conv1.weight"] is Role.CONV
    assert roles["bn1.weight"] is Role.NORM and roles["bn1.bias"] is Role.BIAS
    assert roles["stages.1.0.shortcut.0.weight"] is Role.CONV
    assert roles["stages.1.0.shortcut.1.weight"] is Role.NORM
    assert roles["head.weight"] is Role.HEAD and roles["head.bias"] is Role.BIAS


@pytest.mark.parametrize("scale", ["smoke", "full"])
def test_batches_are_a_pure_function_of_seed_and_step(
    scale: str, data_dir: Path, fake_cifar_dir: Path
) -> None:
    folder = data_dir if scale == "smoke" else fake_cifar_dir
    a, b, other = (_workload(folder, scale, seed) for seed in (1, 1, 2))
    batch_size = a.config.batch_size
    images, labels = a.get_batch(5)  # epoch 1 at full (4 steps per fake epoch)
    assert images.shape == (batch_size, 3, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (batch_size,) and labels.dtype == torch.int64
    for step in (0, 5, 5, 1, 30):  # revisits across epochs: the cached order must not matter
        x, y = a.get_batch(step)
        assert torch.equal(x, b.get_batch(step)[0]) and torch.equal(y, b.get_batch(step)[1])
    assert not torch.equal(images, a.get_batch(6)[0])
    assert not torch.equal(images, other.get_batch(5)[0])


def _view(image: np.ndarray, flipped: bool, dy: int, dx: int) -> np.ndarray:
    """Mirror, then take the 32x32 crop at (4 + dy, 4 + dx) of the zero-padded image."""
    source = image[:, ::-1] if flipped else image
    return np.pad(source, 4)[4 + dy : 36 + dy, 4 + dx : 36 + dx]


def test_augmentation_flips_translates_with_zeros_and_cuts_out_12x12(data_dir: Path) -> None:
    workload = _workload(data_dir, seed=4)
    count = 64
    # Pixel (r, c) of image i holds the distinct value 1 + r * 32 + c + 1024 * i, in all channels.
    codes = 1 + torch.arange(count * 32 * 32, dtype=torch.float32).view(count, 1, 32, 32)
    out = workload.augment(codes.expand(-1, 3, -1, -1), step=7, epoch=0, index=torch.arange(count))[
        :, 0
    ].numpy()
    views = [(f, dy, dx) for f in (False, True) for dy in range(-4, 5) for dx in range(-4, 5)]
    found, cut_sides = [], []
    for i in range(count):
        image = codes[i, 0].numpy()
        kept = out[i] != 0
        matches = [v for v in views if np.array_equal(out[i][kept], _view(image, *v)[kept])]
        assert len(matches) == 1  # one flip and translation explains every kept pixel
        expected = _view(image, *matches[0])
        cut = (out[i] == 0) & (expected != 0)  # zeroed pixels that are not padding
        rows, cols = np.nonzero(cut)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert cut.sum() == height * width and height <= 12 and width <= 12  # one clipped square
        found.append(matches[0])
        cut_sides += [height, width]
    flips = [f for f, _, _ in found]
    assert 16 < sum(flips) < 48
    assert len({(dy, dx) for _, dy, dx in found}) > 20
    assert cut_sides.count(12) > count // 2 and min(cut_sides) < 12  # some squares clipped
    assert not np.array_equal(
        out, workload.augment(codes.expand(-1, 3, -1, -1), 8, 0, torch.arange(count))[:, 0].numpy()
    )


def test_eval_reports_the_target_metric_with_flip_tta(data_dir: Path) -> None:
    workload = _workload(data_dir)
    model = workload.build_model(seed=0).eval()
    images = workload.images.test_x[:8]
    with torch.no_grad():
        tta = workload.tta_logits(model, images)
        torch.testing.assert_close(tta, 0.5 * (model(images) + model(images.flip(-1))))
        metrics = workload.evaluate(model)
    target = workload.config.target
    assert target.metric == "test_accuracy" and target.direction is Direction.MAX
    assert set(metrics) == {"test_accuracy", "test_loss"}
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_loss"] > 0
    assert workload.label_smoothing == 0.0


def test_adamw_steps_reduce_the_loss(data_dir: Path) -> None:
    workload = _workload(data_dir)
    model = workload.build_model(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = workload.loss(model, workload.get_batch(0)).item()
    for step in range(20):
        loss = workload.loss(model, workload.get_batch(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert workload.loss(model, workload.get_batch(0)).item() < 0.8 * first


def test_model_init_is_seeded(data_dir: Path) -> None:
    workload = _workload(data_dir)
    a, b, c = workload.build_model(0), workload.build_model(0), workload.build_model(1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
