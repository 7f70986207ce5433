"""The diffusion workload: U-Net sizes and roles, noised batches, the fixed eval grid, the EMA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from harness.contract import Role
from harness.errors import UsageError
from harness.workload import Direction
from workloads.diffusion import (
    EVAL_CHUNK,
    Diffusion,
    UNet,
    eval_noise,
    eval_timesteps,
    linear_alpha_bars,
)
from workloads.vision import epoch_order

CPU = torch.device("cpu")


def _unet(scale: str) -> UNet:
    settings = dict(Diffusion.configs[scale].model)
    settings.pop("ema_decay")
    return UNet(**settings)


def _workload(data_dir: Path, seed: int = 0, scale: str = "smoke") -> Diffusion:
    workload = Diffusion(scale, data_dir)
    workload.setup(CPU, seed)
    return workload


class _Zeros(nn.Module):
    """Predicts ε = 0, so the ε-MSE is the mean square of the eval noise itself."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_full_unet_keeps_the_input_shape_and_has_9m_parameters() -> None:
    torch.manual_seed(0)
    model = _unet("full")
    assert sum(p.numel() for p in model.parameters()) == 8_952_067
    assert sum(p.numel() for p in _unet("smoke").parameters()) == 164_563
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([0, 999])), torch.zeros(2, 3, 32, 32))  # zero init
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
        out = model(x, torch.tensor([0, 999]))
    assert out.shape == x.shape and torch.isfinite(out).all() and out.abs().sum() > 0


def test_schedule_and_eval_grid() -> None:
    alpha_bars = linear_alpha_bars()
    assert alpha_bars.shape == (1000,) and alpha_bars[0] == pytest.approx(1 - 1e-4)
    assert 3e-5 < alpha_bars[-1] < 5e-5 and bool((alpha_bars.diff() < 0).all())
    grid = eval_timesteps()
    assert len(grid) == 16 and grid[:3] == [31, 94, 156] and grid[-1] == 969


def test_roles_cover_every_parameter_by_kind(fake_cifar_dir: Path) -> None:
    workload = Diffusion("full", fake_cifar_dir)
    model = _unet("full")
    roles = workload.param_roles(model)
    groups = workload.param_groups(model)  # raises if a trainable parameter has no role
    assert len(groups) == len(list(model.parameters()))
    assert set(roles.values()) == {Role.CONV, Role.NORM, Role.BIAS, Role.MATRIX, Role.HEAD}
    assert roles["conv_out.weight"] is Role.HEAD and roles["conv_out.bias"] is Role.BIAS
    assert roles["conv_in.weight"] is Role.CONV and roles["downsample.0.weight"] is Role.CONV
    assert roles["time_mlp.0.weight"] is Role.MATRIX and roles["time_mlp.2.weight"] is Role.MATRIX
    assert roles["down.0.blocks.0.time_proj.weight"] is Role.MATRIX
    assert roles["down.1.blocks.0.skip.weight"] is Role.CONV  # 64 -> 128: a 1x1 conv
    assert roles["down.1.attentions.0.qkv.weight"] is Role.MATRIX  # attention at 16x16
    assert roles["mid_attention.proj.weight"] is Role.MATRIX
    assert roles["up.0.blocks.0.norm1.weight"] is Role.NORM
    assert roles["up.0.blocks.0.norm1.bias"] is Role.BIAS
    for name, param in model.named_parameters():
        expected = {4: {Role.CONV, Role.HEAD}, 2: {Role.MATRIX}, 1: {Role.NORM, Role.BIAS}}
        assert roles[name] in expected[param.dim()], name


def test_smoke_batches_are_noised_flipped_training_images_pure_in_seed_and_step(
    data_dir: Path,
) -> None:
    a, b, other = _workload(data_dir, 1), _workload(data_dir, 1), _workload(data_dir, 2)
    assert a.train_x.shape == (1437, 3, 8, 8) and a.test_x.shape == (360, 3, 8, 8)
    assert a.train_x.min() >= -1 and a.train_x.max() <= 1
    x_t, t, noise = a.get_batch(50)  # epoch 1: 44 batches of 32 per epoch
    assert x_t.shape == noise.shape == (32, 3, 8, 8) and t.shape == (32,)
    assert t.dtype == torch.int64 and 0 <= int(t.min()) and int(t.max()) < 1000
    for step in (0, 50, 50, 7, 399):  # revisits across epochs: the order cache must not matter
        for mine, theirs in zip(a.get_batch(step), b.get_batch(step), strict=True):
            assert torch.equal(mine, theirs)
    assert not torch.equal(x_t, a.get_batch(51)[0])
    assert not torch.equal(x_t, other.get_batch(50)[0])
    # Undo the noising: each row is its epoch-order training image, mirrored or not.
    alpha_bars = linear_alpha_bars()[t].float().view(-1, 1, 1, 1)
    x0 = (x_t - (1 - alpha_bars).sqrt() * noise) / alpha_bars.sqrt()
    index = torch.as_tensor(epoch_order(1, 1, 1437)[(50 - 44) * 32 :][:32])
    images = a.train_x[index]
    is_plain = [torch.allclose(x0[i], images[i], atol=2e-3) for i in range(32)]
    is_mirror = [torch.allclose(x0[i], images[i].flip(-1), atol=2e-3) for i in range(32)]
    assert all(p or m for p, m in zip(is_plain, is_mirror, strict=True))
    assert 4 <= sum(m and not p for p, m in zip(is_plain, is_mirror, strict=True)) <= 28


def test_full_scale_stages_cifar_in_minus_one_to_one_and_batches_128(fake_cifar_dir: Path) -> None:
    a, b = _workload(fake_cifar_dir, 3, "full"), _workload(fake_cifar_dir, 3, "full")
    assert a.train_x.shape == (2048, 3, 32, 32) and a.test_x.shape == (512, 3, 32, 32)
    assert float(a.train_x.min()) == -1.0 and float(a.train_x.max()) == 1.0
    assert a.batches.steps_per_epoch == 16 and a.config.batch_size == 128
    assert a.config.precision == "bf16-autocast" and a.precision(CPU) == "fp32"
    x_t, t, noise = a.get_batch(17)
    assert x_t.shape == noise.shape == (128, 3, 32, 32) and t.shape == (128,)
    assert all(torch.equal(p, q) for p, q in zip(a.get_batch(17), b.get_batch(17), strict=True))


def test_full_scale_without_prepared_data_names_the_prepare_command(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="optbench data prepare cifar10"):
        _workload(tmp_path, 0, "full")


def test_eval_noise_is_fixed_per_level_and_chunk_of_500(fake_cifar_dir: Path) -> None:
    workload = _workload(fake_cifar_dir, 5, "full")  # 512 test images: chunks of 500 and 12
    workload.ema = _Zeros()
    metrics = workload.evaluate(_Zeros())
    grid = eval_timesteps()
    assert set(metrics) == {"denoise_loss"} | {f"denoise_loss_t{t:03d}" for t in grid}
    for level, t in enumerate(grid):
        shapes = [(EVAL_CHUNK, 3, 32, 32), (512 - EVAL_CHUNK, 3, 32, 32)]
        squares = [eval_noise(level, c, torch.Size(s), CPU).square() for c, s in enumerate(shapes)]
        expected = torch.cat([s.mean(dim=(1, 2, 3)) for s in squares]).mean()
        assert metrics[f"denoise_loss_t{t:03d}"] == pytest.approx(float(expected), rel=1e-6)
        assert metrics[f"denoise_loss_t{t:03d}"] == pytest.approx(1.0, abs=0.01)  # ε ~ N(0, I)
    levels = [metrics[f"denoise_loss_t{t:03d}"] for t in grid]
    assert metrics["denoise_loss"] == pytest.approx(sum(levels) / 16)
    assert not torch.equal(
        eval_noise(0, 0, torch.Size([4]), CPU), eval_noise(1, 0, torch.Size([4]), CPU)
    )
    assert not torch.equal(
        eval_noise(0, 0, torch.Size([4]), CPU), eval_noise(0, 1, torch.Size([4]), CPU)
    )


def test_two_evals_agree_whatever_the_trial_seed(data_dir: Path) -> None:
    a, b = _workload(data_dir, 0), _workload(data_dir, 7)
    model_a, model_b = a.build_model(seed=3), b.build_model(seed=3)
    with torch.no_grad():
        for model, workload in ((model_a, a), (model_b, b)):
            for p in model.parameters():  # leave the zero init: a model that predicts something
                p.add_(
                    0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()))
                )
            workload.after_step(model)
    first = a.evaluate(model_a)
    assert a.config.target.metric == "denoise_loss" and a.config.target.direction is Direction.MIN
    assert first == a.evaluate(model_a) == b.evaluate(model_b)
    assert first["denoise_loss"] != pytest.approx(1.0, abs=1e-3)


def test_ema_follows_the_model_and_is_what_evaluate_scores(data_dir: Path) -> None:
    workload = _workload(data_dir)
    model = workload.build_model(seed=0)
    ema = workload.ema
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), ema.parameters(), strict=True))
    assert not any(p.requires_grad for p in ema.parameters()) and not ema.training
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for step in range(20):
        loss = workload.loss(model, workload.get_batch(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] == pytest.approx(1.0, abs=0.05) and sum(losses[-5:]) / 5 < 0.5
    # Without after_step the EMA is still the zero-output initial model: the trained one is ignored.
    before = workload.evaluate(model)
    assert before["denoise_loss"] == pytest.approx(1.0, abs=0.01)
    old = [p.clone() for p in ema.parameters()]
    workload.after_step(model)
    decay = min(0.99, 2 / 11)  # the first update: d_1 = min(ema_decay, (1 + 1) / (10 + 1))
    for p, q, o in zip(model.parameters(), ema.parameters(), old, strict=True):
        torch.testing.assert_close(q, decay * o + (1 - decay) * p.detach())
    assert workload.evaluate(model)["denoise_loss"] < before["denoise_loss"] - 0.3
