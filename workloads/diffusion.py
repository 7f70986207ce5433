"""Diffusion: a small U-Net denoiser (DDPM); metric: held-out denoising loss on a fixed noise grid.

Objective: epsilon prediction (Ho et al. 2020), T = 1000 steps, DDPM's linear schedule:
    β_t = 1e-4 + (0.02 − 1e-4) · t / (T − 1),   t = 0..T−1
    ᾱ_t = ∏_{s<=t} (1 − β_s)                     (ᾱ_0 = 1 − 1e-4, ᾱ_999 ≈ 4e-5)
    x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε,           ε ~ N(0, I)
    loss = mean over the batch and pixels of (ε_θ(x_t, t) − ε)²
Images x_0 are the uint8 pixels scaled to [-1, 1] (x / 127.5 − 1; no per-channel standardization,
the diffusion convention). Batches: epoch e = step // steps_per_epoch visits the training images in
`epoch_order(seed, e, n)` (the last partial batch is dropped); each image gets a timestep
t ~ U{0..T−1}, a left-right mirror with probability 1/2, and noise ε, drawn in that order on the
device from one generator seeded by `SeedSequence([seed, step])`. So a batch (x_t, t, ε) is a pure
function of (seed, step) on a device type.

Model: DDPM's CIFAR-10 U-Net at half its width (Ho et al.: c = 128, 35.7M parameters). Sizes are
`config.model` settings; full: c = 64, channel mults (1, 2, 2, 2) over 32/16/8/4, 2 ResBlocks per
level, attention at 16x16, dropout 0.1, 32 GroupNorm groups: 8,952,067 parameters, 3.0 GFLOP per
image forward::

    t -> sinusoidal(c) -> linear(c -> 4c) -> SiLU -> linear(4c -> 4c) = temb
    x (B, 3, 32, 32) -> conv3x3(3 -> c)                                           32x32
    down, per level i (width c·mult_i): n_res ResBlocks, each [+ Attention at the attention
         resolutions]; then conv3x3 stride 2 (not after the last level)           32 .. 4
    middle: ResBlock -> Attention -> ResBlock                                     4x4
    up, per level in reverse: n_res + 1 ResBlocks on concat(h, skip) [+ Attention];
         then nearest upsample x2 -> conv3x3 (not after the first level)          4 .. 32
    -> GroupNorm -> SiLU -> conv3x3(c -> 3) = ε_θ(x_t, t)
    ResBlock(x, temb): h = conv3x3(SiLU(GN(x))) + linear(SiLU(temb))
                       h = conv3x3(dropout(SiLU(GN(h))))
                       out = skip(x) + h               (skip: 1x1 conv if the widths differ)
    Attention(x): x + proj(softmax(q kᵀ / √C) v), (q, k, v) = linear(GN(x)), one head, H·W tokens
The second conv of each ResBlock, the attention output projection and the output conv start at
zero (as in DDPM), so the first prediction is 0 and the first loss 1. Roles: conv filters CONV
(input conv, ResBlock convs and 1x1 skips, down/upsampling convs), GroupNorm gains NORM, every bias
BIAS, dense weights MATRIX (time MLP, per-block time projections, attention q/k/v and output
projections), the output conv's filter HEAD.

EMA: the workload keeps a copy θ̄ of the weights, made in `build_model` and updated after every
optimizer step (`after_step`, timed): θ̄ ← d_n · θ̄ + (1 − d_n) · θ, d_n = min(ema_decay,
(1 + n) / (10 + n)) at the n-th update. `evaluate` scores θ̄, never the model it is handed (the
U-Net has no buffers: GroupNorm keeps no statistics). ema_decay: 0.9999 at full (DDPM), 0.99 at
smoke (there the warm-up form (1 + n) / (10 + n) governs the whole trial).

Eval: `denoise_loss` (the target metric, lower is better) is the EMA model's ε-MSE averaged over
all test images and 16 timesteps t_k = round((k + 0.5) · T / 16), k = 0..15 (31, 94, ..., 969);
`denoise_loss_t031` ... `denoise_loss_t969` are the per-level means. The noise is fixed: for level
k and chunk c (test images 500c .. 500c + 499) it comes from a generator on the eval device
seeded by `SeedSequence([20200619, k, c])`, independent of the trial seed, so every eval of every
trial on a device type sees the same (x_t, t, ε); one forward per (chunk, level).

Scales: `full` is CIFAR-10 (50,000 train / 10,000 test, `optbench data prepare cifar10`), batch
128, 50,000 steps (128 epochs), bf16 autocast, eval every 2,500 steps (500 in the last 10%). Its
target (denoise_loss <= 0.035), time budget (3,600 s on one H100) and reference point (lr 1e-3:
DDPM's 2e-4 lies below the AdamW search space; warmup_frac 0.1 = DDPM's 5,000 warmup steps; no
weight decay, as DDPM) are estimates, provisional until `optbench calibrate diffusion --scale full
--device cuda` on a GPU confirms them. `smoke` runs the same code with c = 16, mults (1, 2), one
ResBlock per level, attention only in the middle, no dropout (164,563 parameters), batch 32, 400
steps, eval every 40, on the digits32 images (`workloads.vision`) average-pooled 4x4 to 8x8, the
digits' native resolution (digits32 is 8x8 upsampled, so little is lost). At 32x32 one eval (16
levels x 360 images) alone would take ~100 s on one CPU thread; at 8x8 it takes ~0.7 s. Smoke
target: `workloads/CALIBRATION.md`.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.algoperf.view import AlgoPerfView
from harness.contract import Role
from harness.workload import Direction, Precision, Target, Workload, WorkloadConfig, roles_by_module
from workloads.vision import EpochBatches, conventional_role, flip, image_arrays, image_config

__all__ = ["EVAL_CHUNK", "Diffusion", "UNet", "eval_noise", "eval_timesteps", "linear_alpha_bars"]

_Layer = TypeVar("_Layer", nn.Conv2d, nn.Linear)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # x_t (B, 3, H, W), t (B,), ε (B, 3, H, W)

NUM_TIMESTEPS = 1000
EVAL_LEVELS = 16
_EVAL_NOISE_SEED = 20200619  # DDPM's arXiv date: any constant will do, but it must never change
EVAL_CHUNK = 500  # test images per eval-noise draw (and per eval forward)


def linear_alpha_bars(num_timesteps: int = NUM_TIMESTEPS) -> torch.Tensor:
    """ᾱ_t for DDPM's linear schedule β_t from 1e-4 to 0.02 (float64, shape (T,))."""
    betas = torch.linspace(1e-4, 0.02, num_timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def eval_timesteps(num_timesteps: int = NUM_TIMESTEPS, levels: int = EVAL_LEVELS) -> list[int]:
    """The fixed eval grid t_k = round((k + 0.5) · T / levels), k = 0..levels−1."""
    return [round((k + 0.5) * num_timesteps / levels) for k in range(levels)]


def _seeded_generator(device: torch.device, *entropy: int) -> torch.Generator:
    """A generator on `device` seeded by a hash of `entropy`
    (distinct tuples, unrelated streams)."""
    state = np.random.SeedSequence(list(entropy)).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def eval_noise(level: int, chunk: int, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """The fixed ε of eval level `level` for test images [500·chunk, 500·(chunk + 1))."""
    draws = _seeded_generator(device, _EVAL_NOISE_SEED, level, chunk)
    return torch.randn(shape, generator=draws, device=device)


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, dim) features [sin(t·f_i), cos(t·f_i)], f_i = 10000^(−i / (dim/2)), i < dim/2."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=1)


def _zero_init(layer: _Layer) -> _Layer:
    """`layer` with zero weight and bias: a residual branch (or output) that starts as 0."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class ResBlock(nn.Module):
    """GN -> SiLU -> conv3x3 (+ time projection) -> GN -> SiLU -> dropout -> conv3x3, residual."""

    def __init__(
        self, width_in: int, width_out: int, time_width: int, groups: int, dropout: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, width_in)
        self.conv1 = nn.Conv2d(width_in, width_out, 3, padding=1)
        self.time_proj = nn.Linear(time_width, width_out)
        self.norm2 = nn.GroupNorm(groups, width_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero_init(nn.Conv2d(width_out, width_out, 3, padding=1))
        self.skip = nn.Conv2d(width_in, width_out, 1) if width_in != width_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the H·W positions, residual (DDPM's AttnBlock)."""

    def __init__(self, width: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = _zero_init(nn.Linear(width, width))

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x_BCHW.shape
        tokens_BLC = self.norm(x_BCHW).flatten(2).transpose(1, 2)
        q, k, v = self.qkv(tokens_BLC).unsqueeze(1).chunk(3, dim=-1)  # each (B, 1, L, C)
        out_BLC = self.proj(F.scaled_dot_product_attention(q, k, v).squeeze(1))
        return x_BCHW + out_BLC.transpose(1, 2).reshape(b, c, h, w)


class _Level(nn.Module):
    """One resolution of the U-Net: ResBlocks, each optionally followed by attention."""

    def __init__(
        self,
        widths: list[tuple[int, int]],
        time_width: int,
        groups: int,
        dropout: float,
        has_attention: bool,
        is_up: bool,
    ) -> None:
        super().__init__()
        self.is_up = is_up
        self.blocks = nn.ModuleList(ResBlock(i, o, time_width, groups, dropout) for i, o in widths)
        self.attentions = nn.ModuleList(
            Attention(o, groups) if has_attention else nn.Identity() for _, o in widths
        )

    def forward(
        self, h: torch.Tensor, temb: torch.Tensor, skips: list[torch.Tensor]
    ) -> torch.Tensor:
        """A down level pushes each block's output onto `skips`; an up level pops one per block."""
        for block, attention in zip(self.blocks, self.attentions, strict=True):
            if self.is_up:
                h = torch.cat((h, skips.pop()), dim=1)
            h = attention(block(h, temb))
            if not self.is_up:
                skips.append(h)
        return h


class UNet(nn.Module):
    """The U-Net drawn in the module docstring: ε_θ(x_t, t) with the shape of x_t."""

    def __init__(
        self,
        base_channels: int = 64,
        channel_mults: tuple[int, ...] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attention_resolutions: tuple[int, ...] = (16,),
        dropout: float = 0.1,
        norm_groups: int = 32,
        image_size: int = 32,
        channels: int = 3,
    ) -> None:
        super().__init__()
        c, time_width = base_channels, 4 * base_channels
        self.base_channels = c
        self.time_mlp = nn.Sequential(
            nn.Linear(c, time_width), nn.SiLU(), nn.Linear(time_width, time_width)
        )
        self.conv_in = nn.Conv2d(channels, c, 3, padding=1)
        widths = [c * m for m in channel_mults]
        last = len(widths) - 1

        def level(pairs: list[tuple[int, int]], resolution: int, is_up: bool) -> _Level:
            has_attention = resolution in attention_resolutions
            return _Level(pairs, time_width, norm_groups, dropout, has_attention, is_up)

        skips, width, resolution = [c], c, image_size
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for i, out in enumerate(widths):
            pairs = [(width if j == 0 else out, out) for j in range(num_res_blocks)]
            self.down.append(level(pairs, resolution, is_up=False))
            width = out
            skips += [out] * num_res_blocks
            if i < last:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skips.append(width)
                resolution //= 2
        self.mid_block1 = ResBlock(width, width, time_width, norm_groups, dropout)
        self.mid_attention = Attention(width, norm_groups)
        self.mid_block2 = ResBlock(width, width, time_width, norm_groups, dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, out in reversed(list(enumerate(widths))):
            pairs = []
            for _ in range(num_res_blocks + 1):
                pairs.append((width + skips.pop(), out))
                width = out
            self.up.append(level(pairs, resolution, is_up=True))
            if i > 0:
                self.upsample.append(nn.Conv2d(width, width, 3, padding=1))
                resolution *= 2
        self.norm_out = nn.GroupNorm(norm_groups, width)
        self.conv_out = _zero_init(nn.Conv2d(width, channels, 3, padding=1))

    def forward(self, x_BCHW: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(sinusoidal_embedding(t_B, self.base_channels))
        h = self.conv_in(x_BCHW)
        skips = [h]
        for i, level in enumerate(self.down):
            h = level(h, temb, skips)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        h = self.mid_block2(self.mid_attention(self.mid_block1(h, temb)), temb)
        for i, level in enumerate(self.up):
            h = level(h, temb, skips)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


_FULL_MODEL = {
    "image_size": 32,
    "base_channels": 64,
    "channel_mults": (1, 2, 2, 2),
    "num_res_blocks": 2,
    "attention_resolutions": (16,),
    "dropout": 0.1,
    "norm_groups": 32,
    "ema_decay": 0.9999,
}
_SMOKE_MODEL = {
    "image_size": 8,
    "base_channels": 16,
    "channel_mults": (1, 2),
    "num_res_blocks": 1,
    "attention_resolutions": (),
    "dropout": 0.0,
    "norm_groups": 8,
    "ema_decay": 0.99,
}
_UNET_SETTINGS = (
    "base_channels",
    "channel_mults",
    "num_res_blocks",
    "attention_resolutions",
    "dropout",
    "norm_groups",
    "image_size",
)


class Diffusion(AlgoPerfView, Workload):
    """DDPM ε-prediction with a small U-Net and an EMA of its weights (see the module docstring)."""

    name: ClassVar[str] = "diffusion"
    version: ClassVar[int] = 1
    configs: ClassVar[dict[str, WorkloadConfig]] = {
        "full": image_config(
            _FULL_MODEL,
            batch=128,
            max_steps=50_000,
            target=Target("denoise_loss", 0.035, Direction.MIN, seeds=5, provisional=True),
            max_time_s=3600.0,
            every=2500,
            late=500,
            precision=Precision.BF16_AUTOCAST,
        ),
        "smoke": image_config(
            _SMOKE_MODEL,
            batch=32,
            max_steps=400,
            target=Target("denoise_loss", 0.054, Direction.MIN, seeds=1),
            max_time_s=30.0,
            every=40,
            late=None,
            precision=Precision.FP32,
        ),
    }
    reference_hparams: ClassVar[dict[str, dict[str, float]]] = {
        "full": {"lr": 1e-3, "weight_decay": 0.0, "beta1": 0.9, "warmup_frac": 0.1},
        "smoke": {"lr": 5e-3, "weight_decay": 0.0, "beta1": 0.9, "warmup_frac": 0.05},
    }
    algoperf_loss_type: ClassVar[str] = "MEAN_SQUARED_ERROR"  # the ε-MSE, per image

    def setup(self, device: torch.device, seed: int) -> None:
        self.device = torch.device(device)
        self.seed = seed
        settings = dict(self.config.model)
        x_train, _, x_test, _ = image_arrays(self.scale, self.data_dir)
        self.train_x = self._stage(x_train, settings["image_size"])
        self.test_x = self._stage(x_test, settings["image_size"])
        self.batches = EpochBatches(seed, len(self.train_x), self.config.batch_size, self.device)
        alpha_bars = linear_alpha_bars()
        self._signal_scale = alpha_bars.sqrt().float().to(self.device)  # √ᾱ_t
        self._noise_scale = (1.0 - alpha_bars).sqrt().float().to(self.device)  # √(1 − ᾱ_t)

    def _stage(self, images: np.ndarray, size: int) -> torch.Tensor:
        """uint8 (N, 3, 32, 32) -> float32 in [-1, 1] on the device, average-pooled to `size`."""
        x = torch.as_tensor(np.array(images)).to(self.device).float().div_(127.5).sub_(1.0)
        return x if size == x.shape[-1] else F.adaptive_avg_pool2d(x, size)

    def num_train_examples(self) -> int:
        return len(self.train_x)

    def num_eval_examples(self) -> int:
        return len(self.test_x)

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        settings = dict(self.config.model)
        model = UNet(**{key: settings[key] for key in _UNET_SETTINGS}).to(self.device)
        self.ema = copy.deepcopy(model).requires_grad_(False).eval()
        self.ema_decay = float(settings["ema_decay"])
        self.ema_updates = 0
        return model

    def param_roles(self, model: nn.Module) -> dict[str, Role]:
        assert isinstance(model, UNet)

        def role_of(module: nn.Module, param_name: str) -> Role | None:
            if module is model.conv_out and param_name == "weight":
                return Role.HEAD
            return conventional_role(module, param_name, model.conv_out)

        return roles_by_module(model, role_of, self.name)

    def get_batch(self, step: int) -> Batch:
        _, index = self.batches.indices(step)
        draws = _seeded_generator(self.device, self.seed, step)
        size, device = len(index), self.device
        t = torch.randint(NUM_TIMESTEPS, (size,), generator=draws, device=device)
        is_flipped = torch.rand(size, generator=draws, device=device) < 0.5
        x0 = flip(self.train_x[index], is_flipped)
        noise = torch.randn(x0.shape, generator=draws, device=device)
        return self.noised(x0, t, noise), t, noise

    def noised(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε for per-image timesteps t (B,)."""
        view = (-1, 1, 1, 1)
        return self._signal_scale[t].view(view) * x0 + self._noise_scale[t].view(view) * noise

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x_t, t, noise = batch
        with self.autocast(self.device):
            predicted = model(x_t, t)
        return F.mse_loss(predicted.float(), noise)

    def algoperf_batch(self, batch: Batch) -> dict[str, Any]:
        x_t, t, noise = batch
        return {"inputs": (x_t, t), "targets": noise}

    def algoperf_forward(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        x_t, t = inputs
        with self.autocast(self.device):
            return model(x_t, t)

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema.state_dict(), "ema_updates": self.ema_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state["ema"])
        self.ema_updates = int(state["ema_updates"])

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        """θ̄ ← d·θ̄ + (1 − d)·θ with d = min(ema_decay, (1 + n) / (10 + n)) at update n."""
        self.ema_updates += 1
        n = self.ema_updates
        decay = min(self.ema_decay, (1 + n) / (10 + n))
        weights = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(list(self.ema.parameters()), weights, 1.0 - decay)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """The EMA weights' ε-MSE on the fixed grid (`model` itself is not scored)."""
        timesteps = eval_timesteps()
        totals = torch.zeros(len(timesteps), device=self.device)
        for chunk, start in enumerate(range(0, len(self.test_x), EVAL_CHUNK)):
            x0 = self.test_x[start : start + EVAL_CHUNK]
            for level, step in enumerate(timesteps):
                noise = eval_noise(level, chunk, x0.shape, self.device)
                t = torch.full((len(x0),), step, device=self.device)
                with self.autocast(self.device):
                    predicted = self.ema(self.noised(x0, t, noise), t)
                totals[level] += (predicted.float() - noise).square().mean(dim=(1, 2, 3)).sum()
        per_level = (totals / len(self.test_x)).tolist()
        metrics = {"denoise_loss": sum(per_level) / len(per_level)}
        for step, value in zip(timesteps, per_level, strict=True):
            metrics[f"denoise_loss_t{step:03d}"] = value
        return metrics
