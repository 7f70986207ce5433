"""Shared image pieces: smoke images, staging, augmentations, and the airbench-style cifar10-94."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.contract import Role
from harness.errors import UsageError
from workloads.cifar10_94 import AirbenchNet, Cifar10At94
from workloads.vision import cutout, digits32_arrays, flip, stage_images, translate


def test_digits32_are_the_digits_split_as_rgb_uint8(data_dir: Path) -> None:
    x_train, y_train, x_test, y_test = digits32_arrays(data_dir)
    assert x_train.shape == (1437, 3, 32, 32) and x_test.shape == (360, 3, 32, 32)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8 and y_test.shape == (360,)
    assert np.array_equal(x_train[:, 0], x_train[:, 2])  # grey replicated to 3 channels
    assert x_train.max() == 255 and x_train.min() == 0
    again = digits32_arrays(data_dir)  # the cached copy reads back the same
    assert np.array_equal(again[0], x_train) and np.array_equal(again[3], y_test)


def test_staging_normalizes_each_channel_with_training_statistics(data_dir: Path) -> None:
    staged = stage_images(digits32_arrays(data_dir), torch.device("cpu"))
    means = staged.train_x.mean(dim=(0, 2, 3))
    stds = staged.train_x.std(dim=(0, 2, 3))
    torch.testing.assert_close(means, torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(stds, torch.ones(3), atol=1e-4, rtol=0)
    assert staged.train_y.dtype == torch.int64


def test_flip_translate_and_cutout_move_pixels_as_stated() -> None:
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    flipped = flip(images, torch.tensor([True, False]))
    assert torch.equal(flipped[0], images[0].flip(-1)) and torch.equal(flipped[1], images[1])
    shifted = translate(images, torch.tensor([1, 0]), torch.tensor([0, -1]), pad=1, mode="constant")
    assert torch.equal(shifted[0, 0, :3], images[0, 0, 1:])  # content moves up by one row
    assert torch.equal(shifted[0, 0, 3], torch.zeros(4))  # the zero padding comes in
    assert torch.equal(shifted[1, 0, :, 1:], images[1, 0, :, :3])  # content moves right
    assert torch.equal(
        translate(
            images, torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), pad=2
        ),
        images,
    )
    holed = cutout(torch.ones(1, 3, 8, 8), torch.tensor([0]), torch.tensor([4]), size=4)
    assert holed[0, 0].sum() == 64 - 2 * 4  # a 4x4 square centred on row 0: clipped to 2 rows
    assert torch.equal(holed[0, 0, :2, 2:6], torch.zeros(2, 4))


def test_airbench_net_shapes_and_whitening(fake_cifar_dir: Path) -> None:
    workload = Cifar10At94("full", fake_cifar_dir)
    workload.setup(torch.device("cpu"), seed=0)
    model = workload.build_model(seed=0)
    assert isinstance(model, AirbenchNet)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen_bn_gains = 2 * (64 + 256 + 256)
    assert total == 1_972_792 and trainable == total - 24 * 3 * 2 * 2 - frozen_bn_gains
    assert model(workload.images.test_x[:2]).shape == (2, 10)
    # The whitening conv decorrelates 2x2 patches: its 12 positive filters give unit variance.
    with torch.no_grad():
        out = torch.nn.functional.conv2d(workload.images.train_x[:512], model.whiten.weight[:12])
    variances = out.permute(1, 0, 2, 3).reshape(12, -1).var(dim=1)
    assert variances.max() < 1.05 and variances[-6:].min() > 0.9


def test_cifar10_94_roles_and_frozen_parameters(data_dir: Path) -> None:
    workload = Cifar10At94("smoke", data_dir)
    workload.setup(torch.device("cpu"), seed=0)
    model = workload.build_model(seed=0)
    roles = workload.param_roles(model)
    assert roles["whiten.bias"] is Role.BIAS and roles["head.weight"] is Role.HEAD
    assert roles["groups.0.conv1.weight"] is Role.CONV and roles["groups.2.norm2.bias"] is Role.BIAS
    groups = workload.param_groups(model)
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    assert frozen and not frozen & {id(p) for p in groups.params}  # no optimizer sees them


def test_cifar10_94_batches_flip_alternately_and_are_deterministic(data_dir: Path) -> None:
    a, b = Cifar10At94("smoke", data_dir), Cifar10At94("smoke", data_dir)
    a.setup(torch.device("cpu"), seed=3)
    b.setup(torch.device("cpu"), seed=3)
    images, labels = a.get_batch(30)
    assert images.shape == (64, 3, 32, 32) and labels.dtype == torch.int64
    assert torch.equal(images, b.get_batch(30)[0]) and torch.equal(labels, b.get_batch(30)[1])
    bits = a.flip_bits
    assert 0.3 < bits.float().mean() < 0.7
    index = torch.arange(8)
    unshifted = a.images.train_x[index]
    # Odd epochs invert each image's flip bit: with no translation, epoch 0 and 1 views mirror.
    even = flip(unshifted, bits[index])
    odd = flip(unshifted, bits[index] ^ True)
    assert torch.equal(even.flip(-1), odd)


def test_full_scale_without_prepared_data_names_the_prepare_command(tmp_path: Path) -> None:
    workload = Cifar10At94("full", tmp_path)
    with pytest.raises(UsageError, match="optbench data prepare cifar10"):
        workload.setup(torch.device("cpu"), seed=0)
