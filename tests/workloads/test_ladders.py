"""Model-size ladders: rung scales are ordinary configs that differ from their base only in the
model (and batch), their models grow along the ladder, and a rung trial records its size."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import workloads
from harness.errors import UsageError
from harness.runner import run_trial
from harness.trial import FINISHED, TrialSpec
from harness.workload import WorkloadConfig
from workloads import get_workload
from workloads.cifar10_94 import AirbenchNet
from workloads.nanogpt import GPT, GPTConfig

LADDERED = ["cifar10-94", "nanogpt"]
# Each workload's model from its config's settings, for counting parameters on the meta device.
MODELS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "nanogpt": lambda settings: GPT(GPTConfig(**settings)),
    "cifar10-94": lambda settings: AirbenchNet(tuple(settings["widths"])),
}


def _num_params(name: str, config: WorkloadConfig) -> int:
    with torch.device("meta"):  # no memory: the full rungs have up to 405M parameters
        model = MODELS[name](dict(config.model))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _as_base(config: WorkloadConfig, base: WorkloadConfig) -> WorkloadConfig:
    return dataclasses.replace(
        config,
        model=base.model,
        batch_size=base.batch_size,
        tokens_per_step=base.tokens_per_step,
        micro_batch_size=base.micro_batch_size,
    )


@pytest.mark.parametrize("name", LADDERED)
def test_rungs_differ_from_their_base_only_in_model_and_batch(name: str) -> None:
    cls = workloads.WORKLOADS[name]
    assert set(cls.ladders) == {"smoke", "full"}
    for base, rungs in cls.ladders.items():
        base_config = cls.configs[base]
        assert len(rungs) >= 4 and base not in rungs  # rungs are scales of their own...
        assert base_config.model in {
            cls.configs[r].model for r in rungs
        }  # ...the base's among them
        scales = cls.ladder_scales(base, with_batches=True)
        assert len(scales) == len(rungs) * len(cls.ladder_batches[base])
        per_example = base_config.tokens_per_step // base_config.batch_size
        for scale in scales:
            config = cls.configs[scale]
            assert cls.base_scale_of(scale) == base
            assert _as_base(config, base_config) == base_config
            assert config.tokens_per_step == config.batch_size * per_example
            assert config.batch_size in cls.ladder_batches[base]
            is_variant = scale not in rungs
            assert is_variant == (config.batch_size != base_config.batch_size)
            assert scale.endswith(f"-b{config.batch_size}") == is_variant
        models = {cls.configs[r].model for r in rungs}
        assert len(models) == len(rungs)  # every rung a different model


def test_the_declared_scales_are_unchanged() -> None:
    """Rungs are added beside `smoke` and `full`: their models (and so trial ids) stay."""
    gpt = workloads.NanoGPT.configs
    assert dict(gpt["smoke"].model) == {
        "vocab_size": 256,
        "num_layers": 2,
        "num_heads": 2,
        "head_dim": 32,
        "model_dim": 64,
        "seq_len": 64,
    }
    assert dict(gpt["full"].model)["num_layers"] == 12 and gpt["full"].batch_size == 512
    assert dict(workloads.Cifar10At94.configs["smoke"].model) == {"widths": (16, 32, 32)}
    assert dict(workloads.Cifar10At94.configs["full"].model) == {"widths": (64, 256, 256)}
    assert workloads.NanoGPT.version == 2 and workloads.Cifar10At94.version == 1


@pytest.mark.parametrize("name", LADDERED)
def test_parameter_counts_grow_along_each_ladder(name: str, data_dir: Path) -> None:
    cls = workloads.WORKLOADS[name]
    for base, rungs in cls.ladders.items():
        counts = [_num_params(name, cls.configs[rung]) for rung in rungs]
        assert counts == sorted(set(counts)), (
            f"{name}@{base}: {dict(zip(rungs, counts, strict=True))}"
        )
        base_count = _num_params(name, cls.configs[base])
        assert counts[0] <= base_count / 2 and counts[-1] >= 2 * base_count
    for rung in cls.ladders["smoke"]:  # the smoke rungs for real, on the CPU, through setup
        workload = workloads.get_workload(name, rung, data_dir)
        workload.setup(torch.device("cpu"), seed=0)
        model = workload.build_model(seed=0)
        built = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert built == _num_params(name, cls.configs[rung])
    if name == "nanogpt":  # the speedrun's model: 124M parameters besides the input embedding
        full = _num_params(name, cls.configs["full"])
        assert full - 50304 * 768 == 123_568_128


@pytest.mark.parametrize("name, scale", [("nanogpt", "smoke-m-b32"), ("cifar10-94", "smoke-xs")])
def test_a_rung_trial_records_its_parameters_and_batch(
    name: str, scale: str, data_dir: Path
) -> None:
    cls = workloads.WORKLOADS[name]
    point = cls.reference_hparams["smoke"]
    spec = TrialSpec(
        workload=name,
        scale=scale,
        submission="adamw",
        hparams_json=TrialSpec.canonical_hparams(point),
        seed=0,
        data_dir=str(data_dir),
        max_steps=4,
    )
    row = run_trial(spec, get_workload).row
    config = cls.configs[scale]
    assert row["status"] in FINISHED, row["error"]
    assert row["scale"] == scale and row["steps"] == 4
    assert row["num_params"] == _num_params(name, config)
    assert row["batch_size"] == config.batch_size
    assert row["tokens"] == 4 * config.tokens_per_step


def test_unknown_rungs_and_missing_ladders_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no scale 'smoke-xxl' \(known: .*smoke-l.*smoke-xs"):
        workloads.get_workload("nanogpt", "smoke-xxl", tmp_path)
    with pytest.raises(
        UsageError, match=r"'digits' has no ladder at scale 'smoke' \(its ladders: none\)"
    ):
        workloads.Digits.ladder_scales("smoke")
    with pytest.raises(UsageError, match=r"no ladder at scale 'huge' \(its ladders: nanogpt@smoke"):
        workloads.NanoGPT.ladder_scales("huge")
    assert workloads.NanoGPT.base_scale_of("full-l-b256") == "full"
    assert workloads.NanoGPT.base_scale_of("smoke-m") == "smoke"
    assert workloads.Digits.base_scale_of("smoke") == "smoke"
