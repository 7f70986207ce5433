"""Memory accounting: exact state bytes of torch and optax optimizers, the walker, peaks."""

from __future__ import annotations

import gc

import jax
import optax
import pytest
import torch

from harness.memory import (
    PeakMemory,
    grads_bytes,
    optimizer_state_bytes,
    params_bytes,
    tensor_bytes,
)
from harness.optax_bridge import OptaxOptimizer

MB = 1_000_000
F32 = 4  # bytes


def _model_after_backward() -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    model(torch.randn(8, 16)).square().mean().backward()
    return model, list(model.parameters())


def test_params_and_grads_bytes() -> None:
    _, params = _model_after_backward()
    numel = (16 * 32 + 32) + (32 * 4 + 4)
    assert params_bytes(params) == numel * F32
    assert grads_bytes(params) == params_bytes(params)
    params[0].grad = None
    assert grads_bytes(params) == (numel - 16 * 32) * F32


def test_tensor_bytes_counts_shared_storage_once() -> None:
    x = torch.zeros(10, 10)
    assert tensor_bytes([x, x.view(100), x[:5], x.t()]) == 100 * F32
    assert tensor_bytes([x[:5], x[5:]]) == 100 * F32
    assert tensor_bytes([x[:, 0]]) == (9 * 10 + 1) * F32  # a strided column spans its rows
    assert tensor_bytes([x, jax.dlpack.from_dlpack(x)]) == 100 * F32  # zero-copy alias
    assert tensor_bytes([torch.zeros(0)]) == 0


def test_adamw_state_is_two_moments_plus_step_tensors() -> None:
    _, params = _model_after_backward()
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    assert optimizer_state_bytes(opt) == 0  # torch allocates state lazily, at the first step
    opt.step()
    steps = [opt.state[p]["step"] for p in params]
    assert all(s.dtype == torch.float32 and s.numel() == 1 for s in steps)
    step_bytes = sum(s.numel() * s.element_size() for s in steps)
    assert step_bytes == len(params) * F32
    assert optimizer_state_bytes(opt) == 2 * params_bytes(params) + step_bytes


def test_sgd_without_momentum_has_no_state() -> None:
    _, params = _model_after_backward()
    opt = torch.optim.SGD(params, lr=0.1)
    opt.step()
    assert optimizer_state_bytes(opt) == 0
    with_momentum = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    with_momentum.step()
    assert optimizer_state_bytes(with_momentum) == params_bytes(params)  # one momentum buffer


def test_muon_adamw_pair_sums_both() -> None:
    model, params = _model_after_backward()
    matrices = [p for p in params if p.ndim == 2]
    others = [p for p in params if p.ndim != 2]
    pair = [torch.optim.Muon(matrices, lr=0.02), torch.optim.AdamW(others, lr=1e-3)]
    for opt in pair:
        opt.step()
    expected = params_bytes(matrices) + 2 * params_bytes(others) + len(others) * F32
    assert optimizer_state_bytes(pair) == expected
    assert optimizer_state_bytes(tuple(pair), exclude=params) == expected


def test_optax_adamw_state_is_two_moments_plus_an_int32_count() -> None:
    _, params = _model_after_backward()
    bridge = OptaxOptimizer(params, optax.adamw(1e-3, weight_decay=0.01))
    adam_state = bridge.opt_state[0]  # chain(scale_by_adam, add_decayed_weights, scale_by_lr)
    assert isinstance(adam_state, optax.ScaleByAdamState)
    assert adam_state.count.dtype == "int32" and adam_state.count.shape == ()
    assert all(leaf.dtype == "float32" for leaf in adam_state.mu + adam_state.nu)
    expected = 2 * params_bytes(params) + 4
    assert bridge.state_bytes() == expected
    bridge.step()
    assert optimizer_state_bytes(bridge) == expected


def test_walker_counts_a_custom_objects_tensors_but_not_the_params() -> None:
    model, params = _model_after_backward()

    class FullControl:
        def __init__(self) -> None:
            self.model = model
            self.params = params
            self.extras = {"ema": [torch.zeros(1000)], "lr": 0.1, "fn": lambda: None}
            self.views = [jax.dlpack.from_dlpack(p.detach()) for p in params]
            self.jax_buffer = jax.numpy.zeros(250, dtype=jax.numpy.float32)
            self.inner = torch.optim.SGD(params, lr=0.1, momentum=0.9)
            self.self_ref = self

    sub = FullControl()
    sub.inner.step()
    expected = 1000 * F32 + 250 * F32 + params_bytes(params)  # ema + jax buffer + momentum
    assert optimizer_state_bytes(sub, exclude=params) == expected
    # The parameters of an optimizer met on the way are never state, even without `exclude`.
    assert optimizer_state_bytes(sub) == expected
    # A bare holder of the parameters counts them unless they (and their grads) are excluded.
    holder = {"params": params, "grads": [p.grad for p in params]}
    assert optimizer_state_bytes(holder) == params_bytes(params) + grads_bytes(params)
    assert optimizer_state_bytes(holder, exclude=params) == 0


def test_objects_reporting_their_own_state_bytes() -> None:
    class Reports:
        def optimizer_state_bytes(self) -> int:
            return 123

    assert optimizer_state_bytes(Reports()) == 123
    assert optimizer_state_bytes([Reports(), {"buf": torch.zeros(2)}]) == 123 + 2 * F32


def _touch(n_bytes: int) -> torch.Tensor:
    return torch.ones(n_bytes // F32)  # ones, not empty: the pages must be resident


def test_peak_memory_on_cpu_follows_allocations() -> None:
    gc.collect()  # earlier tests' garbage freed later would drop the RSS below the floor
    peak = PeakMemory("cpu")
    if peak.read()[1] != "vmhwm":
        pytest.fail(f"/proc/self/clear_refs not writable here: source {peak.read()[1]}")
    peak.reset()
    before, _ = peak.read()
    big = _touch(200 * MB)
    big_peak, source = peak.read()
    del big
    assert source == "vmhwm"
    print(f"peak after a 200 MB tensor: {big_peak / MB:.0f} MB above the floor (before {before})")
    assert big_peak - before >= 150 * MB

    peak.reset()
    # Measured again above the resident set of now: the first floor can lie above it once the
    # process (or the allocator) has given back memory it held then, which reads as 0.
    again = PeakMemory("cpu")
    small = _touch(50 * MB)
    small_peak, _ = peak.read()
    small_above_now, _ = again.read()
    del small
    print(f"peak after reset and a 50 MB tensor: {small_above_now / MB:.0f} MB above the RSS then")
    assert small_peak < big_peak  # the reset restarted the high-water mark
    assert small_above_now >= 40 * MB
