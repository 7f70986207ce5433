"""The vit-cifar10 workload: model sizes, attention, roles, batches, augmentation, TTA, eval."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.contract import Role
from harness.workload import Direction
from workloads.vit_cifar10 import ViT, VitBlock, VitCifar10

CPU = torch.device("cpu")


def _workload(data_dir: Path, scale: str = "smoke", seed: int = 0) -> VitCifar10:
    workload = VitCifar10(scale, data_dir)
    workload.setup(CPU, seed)
    return workload


def test_full_model_has_3_7m_parameters_and_65_positions(fake_cifar_dir: Path) -> None:
    workload = _workload(fake_cifar_dir, "full")
    model = workload.build_model(seed=0)
    assert isinstance(model, ViT)
    assert dict(workload.config.model) == {
        "width": 256,
        "depth": 7,
        "heads": 8,
        "mlp_width": 512,
        "patch": 4,
    }
    # patch conv 3*4*4*256 + 256; class token 256; positions 65*256; 7 blocks of 2 LayerNorms
    # (2*256 each) + qkv 256*768+768 + proj 256*256+256 + fc1 256*512+512 + fc2 512*256+256;
    # final LayerNorm 512; head 256*10+10.
    assert sum(p.numel() for p in model.parameters()) == 3_722_250
    assert model.position_embedding.shape == (1, 65, 256)
    assert model(workload.images.test_x[:2]).shape == (2, 10)


def test_smoke_model_is_the_same_class_at_small_size(data_dir: Path) -> None:
    workload = _workload(data_dir)
    model = workload.build_model(seed=0)
    assert isinstance(model, ViT) and len(model.blocks) == 4
    assert model.position_embedding.shape == (1, 17, 64)  # patch 8: 16 patches + class token
    assert sum(p.numel() for p in model.parameters()) == 148_170


def test_attention_is_softmax_of_scaled_dot_products_per_head() -> None:
    torch.manual_seed(0)
    block = VitBlock(width=16, heads=4, mlp_width=32)
    x = torch.randn(2, 5, 16)
    q, k, v = block.qkv(x).view(2, 5, 3, 4, 4).unbind(dim=2)  # (B, T, H, K) each
    weights = torch.softmax(torch.einsum("bthk,bshk->bhts", q, k) / math.sqrt(4), dim=-1)
    heads = torch.einsum("bhts,bshk->bthk", weights, v).reshape(2, 5, 16)
    torch.testing.assert_close(block.attention(x), block.proj(heads))


def test_init_does_not_shrink_with_the_width() -> None:
    torch.manual_seed(0)
    model = ViT(width=64, depth=1, heads=4, mlp_width=128, patch=8)
    assert torch.equal(model.head.weight, torch.zeros_like(model.head.weight))
    assert torch.equal(model.class_token, torch.zeros_like(model.class_token))
    assert abs(model.position_embedding.std().item() - 64**-0.5) < 0.02
    qkv = model.blocks[0].qkv.weight  # Xavier-uniform: std sqrt(2 / (64 + 192))
    assert abs(qkv.std().item() - (2 / (64 + 192)) ** 0.5) < 0.01


@pytest.mark.parametrize("scale", ["smoke", "full"])
def test_roles_by_kind_of_parameter(scale: str, data_dir: Path, fake_cifar_dir: Path) -> None:
    workload = _workload(data_dir if scale == "smoke" else fake_cifar_dir, scale)
    model = workload.build_model(seed=0)
    groups = workload.param_groups(model)  # raises unless every parameter has one role
    assert len(groups) == len(list(model.parameters()))
    roles = workload.param_roles(model)
    assert set(roles.values()) == {Role.EMBEDDING, Role.MATRIX, Role.NORM, Role.BIAS, Role.HEAD}
    embeddings = {"patch_embedding.weight", "class_token", "position_embedding"}
    assert {name for name, role in roles.items() if role is Role.EMBEDDING} == embeddings
    assert roles["patch_embedding.bias"] is Role.BIAS
    for name in ("qkv", "proj", "fc1", "fc2"):
        assert roles[f"blocks.0.{name}.weight"] is Role.MATRIX
        assert roles[f"blocks.0.{name}.bias"] is Role.BIAS
    assert roles["blocks.0.norm1.weight"] is Role.NORM and roles["blocks.0.norm2.bias"] is Role.BIAS
    assert roles["norm.weight"] is Role.NORM and roles["norm.bias"] is Role.BIAS
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
    """Mirror, then take the 32x32 crop at (4 + dy, 4 + dx) of the reflect-padded image."""
    source = image[:, ::-1] if flipped else image
    return np.pad(source, 4, mode="reflect")[4 + dy : 36 + dy, 4 + dx : 36 + dx]


def test_augmentation_flips_and_translates_with_reflection(data_dir: Path) -> None:
    workload = _workload(data_dir, seed=4)
    count = 64
    codes = torch.arange(count * 32 * 32, dtype=torch.float32).view(count, 1, 32, 32)
    out = workload.augment(
        codes.expand(-1, 3, -1, -1), step=7, epoch=0, index=torch.arange(count)
    ).numpy()
    assert np.array_equal(out[:, 0], out[:, 2])
    views = [(f, dy, dx) for f in (False, True) for dy in range(-4, 5) for dx in range(-4, 5)]
    found = []
    for i in range(count):
        matches = [v for v in views if np.array_equal(out[i, 0], _view(codes[i, 0].numpy(), *v))]
        assert len(matches) == 1  # exactly one flip and translation gives every pixel
        found.append(matches[0])
    assert 16 < sum(f for f, _, _ in found) < 48
    assert len({(dy, dx) for _, dy, dx in found}) > 20


def test_eval_reports_the_target_metric_with_flip_tta(data_dir: Path) -> None:
    workload = _workload(data_dir)
    model = workload.build_model(seed=0).eval()
    torch.nn.init.normal_(model.head.weight)  # the zero-initialised head would give equal logits
    images = workload.images.test_x[:8]
    with torch.no_grad():
        tta = workload.tta_logits(model, images)
        torch.testing.assert_close(tta, 0.5 * (model(images) + model(images.flip(-1))))
        metrics = workload.evaluate(model)
    target = workload.config.target
    assert target.metric == "test_accuracy" and target.direction is Direction.MAX
    assert set(metrics) == {"test_accuracy", "test_loss"}
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_loss"] > 0
    assert workload.label_smoothing == 0.1


def test_adamw_steps_reduce_the_loss(data_dir: Path) -> None:
    workload = _workload(data_dir)
    model = workload.build_model(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = workload.loss(model, workload.get_batch(0)).item()
    for step in range(30):
        loss = workload.loss(model, workload.get_batch(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert workload.loss(model, workload.get_batch(0)).item() < 0.9 * first


def test_model_init_is_seeded(data_dir: Path) -> None:
    workload = _workload(data_dir)
    a, b, c = workload.build_model(0), workload.build_model(0), workload.build_model(1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.position_embedding, c.position_embedding)
