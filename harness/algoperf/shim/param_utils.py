"""AlgoPerf's `param_utils`, PyTorch side: parameter shapes keyed by parameter name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.algoperf.shim.spec import ShapeTuple

if TYPE_CHECKING:
    import torch

__all__ = ["pytorch_param_shapes"]


def pytorch_param_shapes(model: torch.nn.Module) -> dict[str, ShapeTuple]:
    """`{name: ShapeTuple(shape)}` for every parameter of `model`, in registration order."""
    return {name: ShapeTuple(tuple(p.shape)) for name, p in model.named_parameters()}
