"""The NanoGPT workload at smoke scale: data shards, roles, batches, training signal, eval."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.contract import Role
from harness.errors import UsageError
from harness.workload import Direction
from workloads.nanogpt import GPT, GPT_CONFIGS, NanoGPT, smoke_data_dir
from workloads.shards import SHARD_MAGIC, SHARD_VERSION, read_shard


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder whose smoke shards are built once for this module."""
    data_dir = tmp_path_factory.mktemp("nanogpt-data")
    NanoGPT("smoke", data_dir).setup(torch.device("cpu"), seed=0)
    return data_dir


def _workload(data_dir: Path, seed: int = 0) -> NanoGPT:
    workload = NanoGPT("smoke", data_dir)
    workload.setup(torch.device("cpu"), seed)
    return workload


def test_smoke_shards_have_the_speedrun_header(smoke_dir: Path) -> None:
    folder = smoke_data_dir(smoke_dir)
    assert folder.name.startswith("nanogpt-smoke-py3.")
    manifest = json.loads((folder / "manifest.json").read_text())
    for split in ("train", "val"):
        path = folder / f"bytes_{split}_000000.bin"
        header = np.fromfile(path, dtype="<i4", count=256)
        assert list(header[:2]) == [SHARD_MAGIC, SHARD_VERSION]
        tokens = read_shard(path)
        assert header[2] == len(tokens) == manifest[f"{split}_tokens"]
        assert int(tokens.max()) < GPT_CONFIGS["smoke"].vocab_size
    assert manifest["val_tokens"] == 64 * 1024
    assert manifest["train_tokens"] > 1_000_000
    assert sorted(p.name for p in folder.iterdir()) == [
        "bytes_train_000000.bin",
        "bytes_val_000000.bin",
        "manifest.json",
    ]


def test_smoke_data_is_reused_and_checked(smoke_dir: Path, tmp_path: Path) -> None:
    train = smoke_data_dir(smoke_dir) / "bytes_train_000000.bin"
    mtime = train.stat().st_mtime_ns
    _workload(smoke_dir)
    assert train.stat().st_mtime_ns == mtime  # reused, not rebuilt

    copy = smoke_data_dir(tmp_path)
    shutil.copytree(smoke_data_dir(smoke_dir), copy)
    corrupt = copy / "bytes_val_000000.bin"
    raw = bytearray(corrupt.read_bytes())
    raw[-1] ^= 1
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(UsageError, match=r"bytes_val_000000\.bin: sha256 differs"):
        _workload(tmp_path)


def test_roles_by_kind_of_parameter(smoke_dir: Path) -> None:
    workload = _workload(smoke_dir)
    model = workload.build_model(seed=0)
    roles = workload.param_roles(model)
    named = dict(model.named_parameters())
    assert roles["embed.weight"] is Role.EMBEDDING
    assert roles["lm_head.weight"] is Role.HEAD
    assert set(roles.values()) == {Role.EMBEDDING, Role.HEAD, Role.MATRIX}
    assert all(p.ndim == 2 for p in named.values())


def test_batches_are_deterministic_in_seed_and_step(smoke_dir: Path) -> None:
    a, b, other = _workload(smoke_dir, 1), _workload(smoke_dir, 1), _workload(smoke_dir, 2)
    cfg = a.config
    inputs, targets = a.get_batch(7)
    assert inputs.shape == targets.shape == (cfg.batch_size, GPT_CONFIGS["smoke"].seq_len)
    assert inputs.dtype == targets.dtype == torch.int64
    assert cfg.tokens_per_step == inputs.numel()
    assert torch.equal(inputs, b.get_batch(7)[0]) and torch.equal(targets, b.get_batch(7)[1])
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    assert not torch.equal(inputs, a.get_batch(8)[0])
    assert not torch.equal(inputs, other.get_batch(7)[0])


def test_model_init_is_seeded(smoke_dir: Path) -> None:
    workload = _workload(smoke_dir)
    first, again = workload.build_model(3), workload.build_model(3)
    different = workload.build_model(4)
    weight = "embed.weight"
    assert torch.equal(first.get_parameter(weight), again.get_parameter(weight))
    assert not torch.equal(first.get_parameter(weight), different.get_parameter(weight))
    assert isinstance(first, GPT)


def test_adamw_steps_reduce_the_loss_and_eval_reports_the_target(smoke_dir: Path) -> None:
    workload = _workload(smoke_dir)
    model = workload.build_model(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = workload.evaluate(model)
    assert workload.config.target.metric == "val_loss"
    assert workload.config.target.direction is Direction.MIN
    assert before["val_loss"] == pytest.approx(math.log(256), abs=1e-4)  # zero-init head
    first = workload.loss(model, workload.get_batch(0)).item()
    for step in range(20):
        loss = workload.loss(model, workload.get_batch(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert workload.loss(model, workload.get_batch(0)).item() < first - 1.0
    with torch.no_grad():
        after = workload.evaluate(model)
    assert after["val_loss"] < before["val_loss"] - 1.0


@pytest.fixture(scope="module")
def fake_fineweb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FineWeb10B in the prepared layout: random GPT-2 token ids, a val shard just long enough."""
    from workloads.shards import write_shard

    root = tmp_path_factory.mktemp("fake-fineweb")
    folder = root / "fineweb10B"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in (1, 2):
        write_shard(folder / f"fineweb_train_{index:06d}.bin", rng.integers(0, 50257, 400_000))
    write_shard(folder / "fineweb_val_000000.bin", rng.integers(0, 50257, 10_485_760 + 1))
    return root


def test_full_scale_reads_fineweb_shards_in_speedrun_batches(fake_fineweb_dir: Path) -> None:
    workload = NanoGPT("full", fake_fineweb_dir)
    workload.setup(torch.device("cpu"), seed=0)
    config = workload.config
    assert config.batch_size * 1024 == config.tokens_per_step == 524_288
    inputs, targets = workload.get_batch(3)
    assert inputs.shape == targets.shape == (512, 1024) and inputs.dtype == torch.int64
    assert torch.equal(inputs.flatten()[1:], targets.flatten()[:-1])  # one contiguous read
    assert len(workload._val) == 320 and workload._val[0][0].shape == (32, 1024)
    val_tokens = read_shard(fake_fineweb_dir / "fineweb10B" / "fineweb_val_000000.bin")
    last_inputs = workload._val[-1][0]
    assert torch.equal(last_inputs[-1, -1], torch.tensor(int(val_tokens[10_485_760 - 1])))
    assert config.micro_batch_size == 32 and config.precision == "bf16-autocast"


def test_full_scale_model_is_the_speedrun_gpt() -> None:
    model = GPT(GPT_CONFIGS["full"])
    assert sum(p.numel() for p in model.parameters()) == 162_201_600
    assert model.embed.weight.shape == (50304, 768) and model.lm_head.weight.shape == (50304, 768)
    assert len(model.blocks) == 12 and model.blocks[0].attn.c_q.weight.shape == (768, 768)
    logits = model(torch.zeros(1, 8, dtype=torch.int64))
    assert logits.shape == (1, 8, 50304) and float(logits.detach().abs().max()) <= 30.0


def test_full_scale_without_shards_names_the_prepare_command(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="optbench data prepare fineweb10B"):
        NanoGPT("full", tmp_path).setup(torch.device("cpu"), seed=0)
