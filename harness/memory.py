"""Memory accounting for a trial: exact bytes of params, grads, optimizer state; measured peak.

Static bytes come from the tensors themselves; the peak is measured (CUDA allocator, or VmHWM on
CPU). The runner records `activations + temporaries = peak - (params + grads + optimizer state)`.

Counting rule for every `*_bytes` function: a tensor occupies the address range it can touch,
`[data_ptr, data_ptr + extent)` with extent = (1 + sum((size_d - 1) * stride_d)) * element_size
(= numel * element_size for a contiguous tensor); overlapping ranges on one device are counted
once, so a tensor, its views and a zero-copy JAX alias of it count once. JAX arrays count each
addressable shard's buffer (`nbytes`) at its `unsafe_buffer_pointer()`.
"""

from __future__ import annotations

import resource
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

import torch

__all__ = [
    "PeakMemory",
    "grads_bytes",
    "optimizer_state_bytes",
    "params_bytes",
    "tensor_bytes",
]

_Span = tuple[str, int, int]  # (device key, start address, end address)
# Not walked: scalars and strings, classes, modules, functions and methods (closures included).
_SCALAR_TYPES = (str, bytes, int, float, complex, bool, type(None), torch.dtype, torch.device)
_CODE_TYPES = (type, types.ModuleType, types.FunctionType, types.MethodType)
_SKIPPED_TYPES = (*_SCALAR_TYPES, *_CODE_TYPES, types.BuiltinFunctionType)


def _device_key(kind: str, index: int | None) -> str:
    return f"{'gpu' if kind in ('cuda', 'gpu') else kind}:{index or 0}"


def _torch_span(t: torch.Tensor) -> _Span | None:
    if t.layout != torch.strided:
        raise TypeError(f"memory accounting counts strided tensors only, got layout {t.layout}")
    if t.numel() == 0 or t.device.type == "meta":
        return None
    extent = 1 + sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride(), strict=True))
    start = t.data_ptr()
    return (_device_key(t.device.type, t.device.index), start, start + extent * t.element_size())


def _jax_spans(x: Any) -> list[_Span]:
    spans = []
    for shard in x.addressable_shards:
        data, dev = shard.data, shard.device
        if data.size:
            start = data.unsafe_buffer_pointer()
            spans.append((_device_key(dev.platform, dev.id), start, start + int(data.nbytes)))
    return spans


def _is_jax_array(x: Any) -> bool:
    jax = sys.modules.get("jax")  # never import jax here: a torch-only trial need not load it
    return jax is not None and isinstance(x, jax.Array)


def _union_bytes(spans: Iterable[_Span]) -> int:
    """Bytes covered by the union of the address ranges."""
    total, cur_key, cur_end = 0, None, -1
    for key, start, end in sorted(spans):
        if key != cur_key or start >= cur_end:
            total += end - start
            cur_key, cur_end = key, end
        elif end > cur_end:
            total += end - cur_end
            cur_end = end
    return total


def _spans(tensors: Iterable[Any]) -> list[_Span]:
    out: list[_Span] = []
    for t in tensors:
        if isinstance(t, torch.Tensor):
            span = _torch_span(t)
            out.extend([span] if span else [])
        elif _is_jax_array(t):
            out.extend(_jax_spans(t))
    return out


def tensor_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of the memory the torch tensors and JAX arrays occupy, each storage range once."""
    return _union_bytes(_spans(tensors))


def params_bytes(params: Iterable[torch.Tensor]) -> int:
    """Bytes of the parameters themselves."""
    return tensor_bytes(params)


def grads_bytes(params: Iterable[torch.Tensor]) -> int:
    """Bytes of the `.grad` tensors that exist (a None grad counts 0)."""
    return tensor_bytes(p.grad for p in params if p.grad is not None)


def optimizer_state_bytes(opt: Any, exclude: Iterable[torch.Tensor] = ()) -> int:
    """Exact bytes of an optimizer's state.

    What is counted, by the type of `opt` (checked in this order):
      - an object with `state_bytes()` or `optimizer_state_bytes()` (the optax bridge, or a
        submission that reports its own): that method's answer;
      - a `torch.optim.Optimizer`: every tensor in `opt.state` values, nested dicts, lists and
        tuples included (`exp_avg`, `exp_avg_sq`, `momentum_buffer`, and the `step` tensors);
        hyperparameters in `param_groups` and `defaults` are not state and are not counted;
      - a list or tuple (e.g. a Muon + AdamW pair): the sum over its items, each by these rules
        (storage shared between items counts once);
      - anything else (full-control submission objects): a walk through attributes (`__dict__`
        and `__slots__`), mappings (values only), lists, tuples and sets, collecting torch tensors
        and JAX arrays; an optimizer or a `state_bytes()` object met on the way is counted by the
        rules above. Not followed: tensor attributes, functions and closures, classes, modules;
        numpy arrays are not counted.
    Never counted: tensors overlapping `exclude` or its tensors' grads, nor the optimizers' own
    parameters and their grads. Pass the model's parameters as `exclude` (and its buffers too, if
    the object holds the model, so BatchNorm statistics are not taken for optimizer state).
    Within one call each storage range counts once; values returned by `state_bytes()` methods
    are added as given.

    Args:
      opt: the optimizer, a list or tuple of optimizers, or a full-control submission object.
      exclude: tensors that are not optimizer state (the model's parameters; their grads follow).

    Returns:
      The bytes of optimizer state.

    Raises:
      TypeError: a state tensor has a non-strided (sparse) layout.
    """
    excluded = list(exclude)
    excluded += [t.grad for t in excluded if t.grad is not None]
    state_spans: list[_Span] = []
    excluded_spans = _spans(excluded)
    reported = _walk(opt, state_spans, excluded_spans)
    owned = _union_bytes(state_spans + excluded_spans) - _union_bytes(excluded_spans)
    return reported + owned


def _walk(root: Any, state_spans: list[_Span], excluded_spans: list[_Span]) -> int:
    """Appends the spans of tensors reachable from `root` to `state_spans`.

    The parameters (and grads) of torch optimizers met on the way go to `excluded_spans`.
    Returns the bytes reported by `state_bytes()`-style methods met on the way.
    """
    reported, stack, seen = 0, [root], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SKIPPED_TYPES):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor) or _is_jax_array(obj):
            state_spans.extend(_spans([obj]))
        elif (method := _state_method(obj)) is not None:
            reported += int(method())
        elif isinstance(obj, torch.optim.Optimizer):
            params = [p for group in obj.param_groups for p in group["params"]]
            excluded_spans.extend(_spans(params + [p.grad for p in params if p.grad is not None]))
            stack.extend(obj.state.values())
        elif isinstance(obj, Mapping):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        else:
            stack.extend(vars(obj).values() if hasattr(obj, "__dict__") else ())
            slots = getattr(type(obj), "__slots__", ())
            slots = (slots,) if isinstance(slots, str) else slots
            stack.extend(getattr(obj, name, None) for name in slots)
    return reported


def _state_method(obj: Any) -> Any:
    for name in ("state_bytes", "optimizer_state_bytes"):
        method = getattr(obj, name, None)
        if callable(method):
            return method
    return None


def _proc_status_bytes(field: str) -> int | None:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM) in bytes; None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _ru_maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakMemory:
    """Measured peak memory of what a trial allocates, above a floor taken at construction.

    The runner creates it after data staging and before model init, so the floor holds the
    interpreter, libraries and staged data, and the peak is what the model, optimizer and training
    allocate. The floor is taken once: `reset()` restarts only the high-water mark (a floor taken
    later would subtract the model and optimizer from the peak).

    Sources (`read()[1]`):
      - "cuda": `torch.cuda.max_memory_allocated(device)` minus `memory_allocated` at construction;
        `reset()` calls `torch.cuda.reset_peak_memory_stats`. Only torch's caching allocator is
        seen; memory JAX allocates on the GPU (the optax bridge's state) is counted exactly by
        `optimizer_state_bytes`, not here.
      - "vmhwm": Linux VmHWM (peak resident set) minus VmRSS at construction; `reset()` writes "5"
        to /proc/self/clear_refs, which sets VmHWM to the current RSS. Resident memory includes
        freed memory the allocator kept, so this is an upper bound on live tensor bytes.
      - "ru_maxrss-unreset": clear_refs is not writable, so the high-water mark cannot be reset;
        `ru_maxrss` minus the floor may include peaks from before construction or `reset()`.
    A peak below the floor reads as 0.

    Args:
      device: the trial's torch device; CUDA devices use the allocator, anything else the process.

    Attributes:
      floor_bytes: usage at construction (CUDA allocated bytes, or VmRSS), subtracted from peaks.
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self._device = torch.device(device)
        self._is_cuda = self._device.type == "cuda"
        self._can_reset = True
        self.reset()
        if self._is_cuda:
            self.floor_bytes = torch.cuda.memory_allocated(self._device)
        else:
            rss = _proc_status_bytes("VmRSS")
            self.floor_bytes = rss if rss is not None else _ru_maxrss_bytes()

    def reset(self) -> None:
        """Restarts the high-water mark at the current usage (the floor stays)."""
        if self._is_cuda:
            torch.cuda.reset_peak_memory_stats(self._device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self._can_reset = False

    def read(self) -> tuple[int, str]:
        """The peak since the last reset, minus the floor: `(peak_bytes, source)`."""
        if self._is_cuda:
            peak, source = torch.cuda.max_memory_allocated(self._device), "cuda"
        elif self._can_reset and (hwm := _proc_status_bytes("VmHWM")) is not None:
            peak, source = hwm, "vmhwm"
        else:
            peak, source = _ru_maxrss_bytes(), "ru_maxrss-unreset"
        return max(peak - self.floor_bytes, 0), source
