"""NanoGPT: a speedrun-style GPT trained on token shards; metric: validation loss (nats per token).

Model (modded-nanogpt's optimizer-track baseline, in its plain form)::

    x = rms_norm(embed(idx))                                   untied token embedding
    per block:  x = x + attn(rms_norm(x));  x = x + mlp(rms_norm(x))
      attn:  q, k, v = x W_q, x W_k, x W_v  (H heads of D);
             q, k = rms_norm(q), rms_norm(k)  (QK-norm)
             q, k = rotary(q), rotary(k);  y = causal softmax(q k^T / sqrt(D)) v;  out = y W_o
      mlp:   out = relu(x W_fc)^2 W_proj                      (ReLU^2, width 4 x model_dim)
    logits = 30 * tanh((rms_norm(x) W_head) / 30)              (soft-cap), loss = cross-entropy

RMSNorm has no learned gain (as in the speedrun), linears have no biases, and `W_o`, `W_proj` and
`W_head` start at zero. Roles: embedding -> EMBEDDING, lm head -> HEAD, every other weight
-> MATRIX.

Scales:
  - `full`, the speedrun's optimizer track: 12 layers, width 768, 6 heads of 128, vocab 50,304,
    1,024-token sequences (162M parameters, 124M without the embedding); 512 sequences = 524,288
    tokens per step, in micro-batches of 32 sequences per process (16 accumulated passes on one GPU,
    2 on eight: the same step); bf16 autocast on GPUs. Data: FineWeb10B GPT-2 token shards from
    `optbench data prepare fineweb10B --train-shards K` (`workloads.datasets.fineweb_shards`), read
    contiguously from a seed-drawn offset (`Sampling.CONTIGUOUS`) without staging them on the GPU;
    validation is the first 10,485,760 tokens of `fineweb_val_000000.bin` (320 batches of 32 x
    1024). 6,000 steps (3.1B tokens; 6,000 steps at a seed-drawn offset need ~32 train shards);
    eval every 125 steps and every 25 in the last 10%. Target: mean val_loss <= 3.28 with the
    speedrun's gate (3.28 - mean) * sqrt(n) >= 0.004 over n = 5 seeds; provisional until the
    reference AdamW is run on a GPU (`optbench calibrate nanogpt --scale full`): the speedrun's
    tuned AdamW baselines needed ~5B tokens for 3.28 on the older architecture.
  - `smoke`: the same code at 2 layers, width 64, on bytes of CPython's standard library.
  - Ladders (fixed-resource and scaling studies, `ladders`): `smoke-xs`, `smoke-s`, `smoke-m`
    (smoke's model), `smoke-l` with 41k, 80k, 131k, 381k parameters, and `full-xs`, `full-s`,
    `full-m` (full's model), `full-l` with 32M, 77M, 162M, 405M (19M, 51M, 124M, 354M without the
    input embedding; `full-l` is GPT-2 medium's shape): the base scale's data, target and budget
    with another model. Batch variants `<rung>-b<batch>` (`ladder_batches`) scale the tokens per
    step with the batch.

Smoke data: bytes (vocab 256) of a fixed, sorted list of CPython standard-library modules' source
(`_SMOKE_MODULES`), concatenated; the last `_SMOKE_VAL_BYTES` bytes are the validation split. Built
on first use into `<data_dir>/nanogpt-smoke-py3.X/bytes_{train,val}_000000.bin` (speedrun shards,
written atomically) plus `manifest.json` (sha256 of each split's tokens, checked on every reuse),
and always read back through `read_shard` and `TokenStream`. The text, so the data, depends on the
CPython version's stdlib (even patch releases may edit it): the folder name carries the minor
version, and the manifest the full one. Training batches use `Sampling.RANDOM_WINDOWS` (the text
runs file after file, unlike FineWeb's shuffled documents, so a contiguous read would train on one
module at a time); validation is the first `val_batches` batches of the val stream (2 x 16 x 64 =
2048 bytes: over 5 reference runs its mean val_loss matched the whole 64 KiB split's to 0.001).
Smoke val_loss is therefore nats per byte. Calibration of the smoke target:
`workloads/CALIBRATION.md`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.algoperf.view import AlgoPerfView
from harness.atomic import write_text_atomic
from harness.contract import Role
from harness.errors import ContractError, UsageError
from harness.workload import (
    Budget,
    Direction,
    Precision,
    Target,
    ThroughputUnit,
    Workload,
    WorkloadConfig,
    ladder_configs,
    roles_by_module,
)
from workloads.datasets import fineweb_shards
from workloads.shards import Sampling, TokenStream, read_shard, write_shard

__all__ = ["GPT", "GPT_CONFIGS", "GPTConfig", "NanoGPT", "prepare_smoke_data", "smoke_data_dir"]

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True, slots=True)
class GPTConfig:
    """The model's shape.

    Attributes:
      vocab_size: token vocabulary (embedding rows and logits).
      num_layers: transformer blocks.
      num_heads: attention heads per block.
      head_dim: width of each head; `num_heads * head_dim` is the attention width.
      model_dim: residual stream width.
      seq_len: tokens per training sequence (the rotary tables' length).
    """

    vocab_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    model_dim: int
    seq_len: int


def _smoke_gpt(num_layers: int, num_heads: int, head_dim: int) -> GPTConfig:
    return GPTConfig(256, num_layers, num_heads, head_dim, num_heads * head_dim, seq_len=64)


def _full_gpt(num_layers: int, num_heads: int) -> GPTConfig:
    return GPTConfig(50304, num_layers, num_heads, 128, num_heads * 128, seq_len=1024)


# Parameter counts N (all weights) and N without the input embedding (the speedrun's "124M").
GPT_CONFIGS: dict[str, GPTConfig] = {
    "smoke-xs": _smoke_gpt(num_layers=2, num_heads=1, head_dim=32),  # N = 41k
    "smoke-s": _smoke_gpt(num_layers=2, num_heads=2, head_dim=24),  # N = 80k
    "smoke": GPTConfig(
        vocab_size=256, num_layers=2, num_heads=2, head_dim=32, model_dim=64, seq_len=64
    ),  # N = 131k
    "smoke-l": _smoke_gpt(num_layers=3, num_heads=3, head_dim=32),  # N = 381k
    "full-xs": _full_gpt(num_layers=8, num_heads=2),  # N = 32M; 19M without the embedding
    "full-s": _full_gpt(num_layers=8, num_heads=4),  # N = 77M; 51M without the embedding
    # GPT-2 small's shape; 50,257 tokens padded to a multiple of 128 for the matmul kernels.
    "full": GPTConfig(
        vocab_size=50304, num_layers=12, num_heads=6, head_dim=128, model_dim=768, seq_len=1024
    ),  # N = 162M; 124M without the embedding
    # GPT-2 medium's shape.
    "full-l": _full_gpt(num_layers=24, num_heads=8),  # N = 405M; 354M without the embedding
}
# The ladders' middle rungs are the declared scales' models (a rung scale of its own, so its trials
# are told apart from the plain scale's in scaling studies).
GPT_CONFIGS |= {"smoke-m": GPT_CONFIGS["smoke"], "full-m": GPT_CONFIGS["full"]}

_SOFTCAP = 30.0


def _rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


class _Linear(nn.Linear):
    """A bias-free linear layer with the speedrun's init: uniform, std 0.5 / sqrt(fan_in)."""

    def __init__(self, in_features: int, out_features: int, zero_init: bool = False) -> None:
        super().__init__(in_features, out_features, bias=False)
        with torch.no_grad():
            if zero_init:
                self.weight.zero_()
            else:
                bound = math.sqrt(3.0) * 0.5 / math.sqrt(in_features)
                self.weight.uniform_(-bound, bound)


class _Rotary(nn.Module):
    """Rotary position embedding over (B, T, H, D) tensors, base 10000, tables for `seq_len`."""

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, head_dim: int, seq_len: int) -> None:
        super().__init__()
        inv_freq = 10000.0 ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", angles.sin()[None, :, None, :], persistent=False)

    def forward(self, x_BTHD: torch.Tensor) -> torch.Tensor:
        t = x_BTHD.size(1)
        cos, sin = self.cos[:, :t], self.sin[:, :t]
        x1, x2 = x_BTHD.float().chunk(2, dim=-1)
        return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1).type_as(x_BTHD)


class _Attention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        width = cfg.num_heads * cfg.head_dim
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.c_q = _Linear(cfg.model_dim, width)
        self.c_k = _Linear(cfg.model_dim, width)
        self.c_v = _Linear(cfg.model_dim, width)
        self.c_proj = _Linear(width, cfg.model_dim, zero_init=True)
        self.rotary = _Rotary(cfg.head_dim, cfg.seq_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        shape = (b, t, self.num_heads, self.head_dim)
        q = self.rotary(_rms_norm(self.c_q(x).view(shape)))
        k = self.rotary(_rms_norm(self.c_k(x).view(shape)))
        v = self.c_v(x).view(shape)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        return self.c_proj(y.transpose(1, 2).reshape(b, t, -1))


class _MLP(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.c_fc = _Linear(dim, 4 * dim)
        self.c_proj = _Linear(4 * dim, dim, zero_init=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class _Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.attn = _Attention(cfg)
        self.mlp = _MLP(cfg.model_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(_rms_norm(x))
        return x + self.mlp(_rms_norm(x))


class GPT(nn.Module):
    """The speedrun-style GPT described in the module docstring."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.num_layers))
        self.lm_head = _Linear(cfg.model_dim, cfg.vocab_size, zero_init=True)

    def forward(self, idx_BT: torch.Tensor) -> torch.Tensor:
        """Soft-capped logits (B, T, vocab_size), fp32, for token ids (B, T)."""
        x = _rms_norm(self.embed(idx_BT))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(_rms_norm(x)).float()
        return _SOFTCAP * torch.tanh(logits / _SOFTCAP)


def _cross_entropy(model: nn.Module, batch: Batch) -> torch.Tensor:
    inputs, targets = batch
    logits = model(inputs)
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


_FULL_BATCH = 512  # sequences per step: 524,288 tokens
_FULL_VAL_TOKENS = 10_485_760


# ----------------------------------------------------------------------------------------------
# Smoke data: CPython stdlib source bytes, as speedrun shards.

# Long-lived pure-Python modules, read in sorted order (1.9 MB of text on 3.11). Where one became a
# package in a later CPython (zipfile in 3.12, pathlib in 3.13), its `__init__.py` is read instead.
_SMOKE_MODULES = (
    "argparse.py",
    "ast.py",
    "bisect.py",
    "calendar.py",
    "configparser.py",
    "contextlib.py",
    "copy.py",
    "csv.py",
    "dataclasses.py",
    "datetime.py",
    "difflib.py",
    "enum.py",
    "fnmatch.py",
    "fractions.py",
    "ftplib.py",
    "functools.py",
    "gettext.py",
    "glob.py",
    "heapq.py",
    "inspect.py",
    "mailbox.py",
    "numbers.py",
    "operator.py",
    "optparse.py",
    "pathlib.py",
    "pickle.py",
    "pprint.py",
    "queue.py",
    "random.py",
    "shlex.py",
    "shutil.py",
    "statistics.py",
    "string.py",
    "tarfile.py",
    "tempfile.py",
    "textwrap.py",
    "threading.py",
    "tokenize.py",
    "traceback.py",
    "typing.py",
    "uuid.py",
    "weakref.py",
    "zipfile.py",
)
_SMOKE_VAL_BYTES = 64 * 1024


def _smoke_source_text() -> tuple[bytes, list[str]]:
    """The concatenated source bytes of `_SMOKE_MODULES` found in this interpreter's stdlib."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    present = [name for name in _SMOKE_MODULES if (stdlib / name).is_file()]
    present += [f"{n[:-3]}/__init__.py" for n in _SMOKE_MODULES if (stdlib / n[:-3]).is_dir()]
    present.sort()
    return b"".join((stdlib / name).read_bytes() for name in present), present


def _sha256(tokens: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(tokens, dtype="<u2").tobytes()).hexdigest()


def _write_json_atomic(path: Path, payload: dict[str, object]) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True))


def smoke_data_dir(data_dir: Path) -> Path:
    """Where the smoke shards of this interpreter live:
    the folder name carries its minor version."""
    return Path(data_dir) / f"nanogpt-smoke-py{sys.version_info.major}.{sys.version_info.minor}"


def prepare_smoke_data(data_dir: Path) -> tuple[Path, Path]:
    """Builds the smoke shards on first use, else checks them against their manifest.

    Returns:
      The train and validation shard paths.

    Raises:
      UsageError: when existing shards do not match the sha256 recorded in the manifest.
    """
    folder = smoke_data_dir(data_dir)
    paths = {split: folder / f"bytes_{split}_000000.bin" for split in ("train", "val")}
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        text, modules = _smoke_source_text()
        tokens = np.frombuffer(text, dtype=np.uint8).astype(np.uint16)
        splits = {"train": tokens[:-_SMOKE_VAL_BYTES], "val": tokens[-_SMOKE_VAL_BYTES:]}
        for split, split_tokens in splits.items():
            write_shard(paths[split], split_tokens)
        manifest = {
            "python": sys.version.split()[0],
            "stdlib_modules": modules,
            **{f"{s}_tokens": len(t) for s, t in splits.items()},
            **{f"{s}_sha256": _sha256(t) for s, t in splits.items()},
        }
        _write_json_atomic(manifest_path, manifest)  # written last: its presence means "complete"
    manifest = json.loads(manifest_path.read_text())
    for split, path in paths.items():
        if _sha256(read_shard(path)) != manifest[f"{split}_sha256"]:
            raise UsageError(
                f"{path}: sha256 differs from {manifest_path}; delete {folder} to rebuild it"
            )
    return paths["train"], paths["val"]


# ----------------------------------------------------------------------------------------------
# The workload.


class NanoGPT(AlgoPerfView, Workload):
    """GPT language modelling on speedrun-format token shards (see the module docstring)."""

    name: ClassVar[str] = "nanogpt"
    version: ClassVar[int] = 2  # 2: smoke target 2.17 (calibrated through the runner), full scale
    configs: ClassVar[dict[str, WorkloadConfig]] = {
        "smoke": WorkloadConfig(
            target=Target(metric="val_loss", value=2.17, direction=Direction.MIN, seeds=1),
            budget=Budget(max_steps=360, max_time_s=30.0, step_hint=288),
            batch_size=16,
            tokens_per_step=16 * GPT_CONFIGS["smoke"].seq_len,
            throughput_unit=ThroughputUnit.TOKENS,
            eval_every_steps=20,
            precision=Precision.FP32,
            model=tuple(dataclasses.asdict(GPT_CONFIGS["smoke"]).items()),
        ),
        "full": WorkloadConfig(
            target=Target(
                metric="val_loss",
                value=3.28,
                direction=Direction.MIN,
                seeds=5,
                gate_margin=0.004,
                provisional=True,
            ),
            budget=Budget(max_steps=6000, max_time_s=4 * 3600.0, step_hint=4800),
            batch_size=_FULL_BATCH,
            tokens_per_step=_FULL_BATCH * GPT_CONFIGS["full"].seq_len,
            throughput_unit=ThroughputUnit.TOKENS,
            eval_every_steps=125,
            eval_every_steps_late=25,
            late_fraction=0.1,
            precision=Precision.BF16_AUTOCAST,
            model=tuple(dataclasses.asdict(GPT_CONFIGS["full"]).items()),
            micro_batch_size=32,
        ),
    }
    # Model-size ladders (fixed-resource and scaling studies): parameter counts at GPT_CONFIGS.
    ladders: ClassVar[dict[str, tuple[str, ...]]] = {
        "smoke": ("smoke-xs", "smoke-s", "smoke-m", "smoke-l"),
        "full": ("full-xs", "full-s", "full-m", "full-l"),
    }
    ladder_batches: ClassVar[dict[str, tuple[int, ...]]] = {
        "smoke": (8, 16, 32),
        "full": (256, 512),
    }
    configs |= ladder_configs(
        configs, ladders, ladder_batches, {k: dataclasses.asdict(v) for k, v in GPT_CONFIGS.items()}
    )
    algoperf_loss_type: ClassVar[str] = "SOFTMAX_CROSS_ENTROPY"  # per token for GPT
    reference_hparams: ClassVar[dict[str, dict[str, float]]] = {
        "smoke": {"lr": 1e-2, "weight_decay": 0.05, "beta1": 0.9, "warmup_frac": 0.05},
        "full": {"lr": 3e-3, "weight_decay": 0.05, "beta1": 0.9, "warmup_frac": 0.05},
    }
    # Validation: this many consecutive batches of `val_batch_size` sequences from the val stream.
    val_batches: ClassVar[dict[str, int]] = {
        "smoke": 2,
        "full": _FULL_VAL_TOKENS // (32 * GPT_CONFIGS["full"].seq_len),
    }
    val_batch_size: ClassVar[dict[str, int]] = {"smoke": 16, "full": 32}

    def setup(self, device: torch.device, seed: int) -> None:
        self.gpt_config = GPTConfig(**dict(self.config.model))
        self.device = torch.device(device)
        self.seed = seed
        b, t = self.config.batch_size, self.gpt_config.seq_len
        if self.base_scale == "smoke":
            train_path, val_path = prepare_smoke_data(self.data_dir)
            self._train = TokenStream([train_path], b, t, self.device, Sampling.RANDOM_WINDOWS)
            val_paths = [val_path]
        else:
            train_paths, val_path = fineweb_shards(self.data_dir)
            self._train = TokenStream(train_paths, b, t, self.device, staged=False)
            val_paths = [val_path]
        val_batch_size = self.val_batch_size[self.base_scale]
        val = TokenStream(val_paths, val_batch_size, t, self.device, staged=False)
        self._val = val.fixed_batches(self.val_batches[self.base_scale])

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return GPT(self.gpt_config).to(self.device)

    def param_roles(self, model: nn.Module) -> dict[str, Role]:
        if not isinstance(model, GPT):
            raise ContractError(f"nanogpt: param_roles needs a GPT model, got {type(model)}")

        def role_of(module: nn.Module, param_name: str) -> Role | None:
            if module is model.lm_head:
                return Role.HEAD
            if isinstance(module, nn.Embedding):
                return Role.EMBEDDING
            return Role.MATRIX if isinstance(module, nn.Linear) and param_name == "weight" else None

        return roles_by_module(model, role_of, self.name)

    def get_batch(self, step: int) -> Batch:
        return self._train.batch(self.seed, step)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        with self.autocast(self.device):
            return _cross_entropy(model, batch)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        with self.autocast(self.device):
            losses = [_cross_entropy(model, batch) for batch in self._val]
        return {"val_loss": float(torch.stack(losses).float().mean())}
