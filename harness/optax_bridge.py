"""Steps PyTorch parameters with an optax `GradientTransformation` through zero-copy DLPack.

One model implementation serves both ecosystems: the model, forward and backward stay in PyTorch;
only the update rule runs in JAX. Each `step`:

    g_jax = from_dlpack(p.grad)              for every parameter (zero-copy view; zeros if None)
    u, s  = jit(tx.update)(g_jax, s, p_jax)  (p_jax: cached zero-copy views of the parameters)
    p    += lr_multiplier * from_dlpack(u)   in place, under torch.no_grad() (u: zero-copy)

The parameters form a flat list pytree, in the order given (`ParamGroups.params`), so an optax mask
or a `multi_transform` label function sees a list with one entry per parameter.

Zero copy holds when the torch buffer is aligned as XLA wants (torch's allocator aligns to 64 bytes,
so ordinary parameters and grads qualify); a misaligned buffer (say, a view at an odd offset) is
copied by `jax.dlpack.from_dlpack`, and the bridge still works, at the price of that copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
import torch

from harness.errors import ContractError

__all__ = ["OptaxOptimizer"]

# JAX runs with x64 off, so only these dtypes cross the bridge unchanged; float64 needs x64 on.
_SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_X64_DTYPES = (torch.float64,)


def _is_x64_enabled() -> bool:
    """Whether JAX holds 64-bit floats here (`jax.enable_x64(True)` sets it within its scope)."""
    return bool(jax.dtypes.canonicalize_dtype(jnp.float64) == jnp.float64)


def _check_dtype(i: int, p: torch.Tensor) -> None:
    """Raises ContractError unless JAX can hold parameter `i`'s dtype as it is configured now."""
    if p.dtype in _SUPPORTED_DTYPES or (p.dtype in _X64_DTYPES and _is_x64_enabled()):
        return
    supported = ", ".join(str(d) for d in _SUPPORTED_DTYPES)
    hint = " (float64 only with JAX's x64 mode on: jax.enable_x64(True))"
    raise ContractError(
        f"OptaxOptimizer: parameter {i} (shape {tuple(p.shape)}) has dtype {p.dtype}; "
        f"supported: {supported}{hint}"
    )


def _to_jax(t: torch.Tensor) -> jax.Array:
    """A JAX array sharing `t`'s buffer (a copy only if XLA rejects the buffer's alignment)."""
    return jax.dlpack.from_dlpack(t.detach())


def _jax_ptr(x: jax.Array) -> int:
    return x.unsafe_buffer_pointer()


class OptaxOptimizer:
    """Applies an optax `GradientTransformation` to torch parameters, updating them in place.

    Learning-rate schedule: the harness passes its schedule's value as `step(lr_multiplier)`,
    which scales the whole optax update: p <- p + s * u. For rules whose update is linear in the
    learning rate this equals running `tx` with lr * s. That holds for optax.adamw, whose decoupled
    weight decay is scaled by the learning rate too,
        u = -lr * (m_hat / (sqrt(v_hat) + eps) + wd * p),
    exactly like torch.optim.AdamW; it holds for sgd, lion, lamb and Muon-style rules alike. It does
    not hold for a rule whose state depends on the learning rate (e.g. schedule-free averaging,
    whose weights use lr, or Prodigy, whose distance estimate does); such a submission should put
    its schedule inside `tx` and leave the multiplier at 1 (see submissions/schedule-free-adamw
    and submissions/prodigy).

    Missing gradients: a parameter whose `.grad` is None is stepped with an all-zero gradient, so
    the optax state keeps one leaf per parameter (moments still decay; decoupled weight decay still
    applies), which is what optax would do for a zero gradient.

    No `param_groups`: a torch-shaped `param_groups` would invite a runner to set `"lr"` there and
    pass the multiplier too, applying the schedule twice. The only way in is `step(lr_multiplier)`.

    Memory: the optax state lives in JAX buffers (`state_bytes()` counts them exactly). During a
    step the old and new state and one parameter-sized update tree coexist transiently: the state
    is not donated, so that `state_dict()` can hand out a reference that stays valid.

    Args:
      params: the parameters to optimize, in pytree order (float32, bfloat16 or float16; float64
        too while JAX's x64 mode is on, e.g. inside `jax.enable_x64(True)`, for construction and
        every step; all on one device that JAX can address: the CPU, or a GPU when jax has its
        CUDA plugin).
      tx: the optax transformation.

    Raises:
      ContractError: no parameters are given, or one has a dtype JAX cannot hold as configured
        (float64 with x64 off; integer or complex dtypes always).
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], tx: optax.GradientTransformation):
        self._params: tuple[torch.nn.Parameter, ...] = tuple(params)
        if not self._params:
            raise ContractError("OptaxOptimizer got no parameters; pass ParamGroups.params")
        for i, p in enumerate(self._params):
            _check_dtype(i, p)
        self._needs_x64 = any(p.dtype in _X64_DTYPES for p in self._params)
        self._tx = tx
        self._param_views: list[jax.Array] = [_to_jax(p) for p in self._params]
        self._device = next(iter(self._param_views[0].devices()))
        state = self._committed(tx.init(list(self._param_views)))
        self._state: optax.OptState = self._own(state, self._torch_ptrs())
        self._update = jax.jit(lambda grads, state, params: tx.update(grads, state, params))

    @property
    def params(self) -> tuple[torch.nn.Parameter, ...]:
        """The parameters this optimizer steps, in pytree order."""
        return self._params

    @property
    def opt_state(self) -> optax.OptState:
        """The current optax state (an immutable JAX pytree)."""
        return self._state

    def _torch_ptrs(self) -> set[int]:
        ptrs = {p.data_ptr() for p in self._params}
        return ptrs | {p.grad.data_ptr() for p in self._params if p.grad is not None}

    def _committed(self, state: optax.OptState) -> optax.OptState:
        """The state with every leaf committed to the parameters' device.

        `init` leaves some leaves (e.g. a `jnp.zeros([], int32)` count) uncommitted, while
        `update` returns committed ones; jit compiles once per commitment pattern, so without
        this the second step would compile again, inside the timed loop.
        """
        return jax.device_put(state, self._device)

    @staticmethod
    def _own(state: optax.OptState, torch_ptrs: set[int]) -> optax.OptState:
        """Copies any state leaf that aliases a torch parameter or grad buffer.

        A transformation may keep its inputs as state (say, an init that stores the params): a
        zero-copy view would then change under the state's feet when torch updates in place.
        """

        def own(leaf: Any) -> Any:
            if isinstance(leaf, jax.Array) and leaf.size and _jax_ptr(leaf) in torch_ptrs:
                return jnp.copy(leaf)
            return leaf

        return jax.tree.map(own, state)

    def _views_of_params(self) -> list[jax.Array]:
        """Cached zero-copy views, rebuilt for any parameter whose storage has moved.

        A cached view keeps its old storage alive, so a moved parameter never reuses the address.
        A view that had to be a copy (misaligned buffer) never matches, so it is re-made each step.
        """
        for i, p in enumerate(self._params):
            view = self._param_views[i]
            if view.size and _jax_ptr(view) != p.data_ptr():
                self._param_views[i] = _to_jax(p)
        return list(self._param_views)

    def _views_of_grads(self, param_views: list[jax.Array]) -> list[jax.Array]:
        """Zero-copy views of the grads (not cached: holding them would keep freed grads alive)."""
        return [
            jnp.zeros_like(v) if p.grad is None else _to_jax(p.grad)
            for p, v in zip(self._params, param_views, strict=True)
        ]

    def step(self, lr_multiplier: float = 1.0) -> None:
        """Runs one optax update and applies it in place: p <- p + lr_multiplier * u.

        Args:
          lr_multiplier: the harness schedule's value at this step (see the class docstring).

        Raises:
          ContractError: float64 parameters, but JAX's x64 mode is off at this call.
        """
        if self._needs_x64 and not _is_x64_enabled():
            # With x64 off, from_dlpack silently makes float32 copies of float64 buffers.
            raise ContractError(
                "OptaxOptimizer.step: float64 parameters need JAX's x64 mode on for every step "
                "(run inside jax.enable_x64(True)), as it was when the optimizer was built"
            )
        param_views = self._views_of_params()
        grads = self._views_of_grads(param_views)
        updates, state = self._update(grads, self._state, param_views)
        # Finish the computation before torch touches the buffers it read or the ones it wrote.
        updates = jax.block_until_ready(updates)
        self._state = self._own(state, self._torch_ptrs())
        with torch.no_grad():
            for p, u in zip(self._params, updates, strict=True):
                p.add_(torch.from_dlpack(u), alpha=lr_multiplier)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears the grads of the parameters, like `torch.optim.Optimizer.zero_grad`."""
        for p in self._params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_()
                p.grad.zero_()

    def state_dict(self) -> dict[str, Any]:
        """The optax state, by reference (JAX state is immutable, so a snapshot needs no copy).

        The pytree pickles (jax arrays pickle as numpy), so `torch.save` can checkpoint it.
        """
        return {"opt_state": self._state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a state from `state_dict()`.

        Raises:
          ValueError: the state's tree structure or leaf shapes differ from this optimizer's.
        """
        new = state_dict["opt_state"]
        # PyTreeDef's stub lacks __eq__ for mypy; treedefs compare by structure at run time.
        new_tree: Any = jax.tree.structure(new)
        own_tree: Any = jax.tree.structure(self._state)
        if new_tree != own_tree:
            raise ValueError(
                f"OptaxOptimizer.load_state_dict: tree structure differs: {new_tree} vs {own_tree}"
            )
        for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(self._state), strict=True):
            if jnp.shape(a) != jnp.shape(b):
                raise ValueError(
                    f"OptaxOptimizer.load_state_dict: leaf shape {jnp.shape(a)} "
                    f"where this optimizer has {jnp.shape(b)}"
                )
        self._state = self._committed(jax.tree.map(jnp.asarray, new))

    def state_bytes(self) -> int:
        """Exact bytes of the optax state: the sum of `nbytes` over its array leaves.

        Counted: every array leaf of the state pytree (moments, counters, ...). Not counted: the
        parameters and grads (torch's), the transient update tree, compiled code.
        """
        return sum(
            int(leaf.nbytes) for leaf in jax.tree.leaves(self._state) if hasattr(leaf, "nbytes")
        )
