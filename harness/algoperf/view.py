"""What a workload declares so that AlgoPerf submissions (level 3) can train on it.

A workload that supports them mixes `AlgoPerfView` into its class (`class Digits(AlgoPerfView,
Workload)`); the adapter (`harness.algoperf.adapter`) refuses every other workload. The
`Workload` contract itself knows nothing of AlgoPerf.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

__all__ = ["AlgoPerfView"]


class AlgoPerfView:
    """AlgoPerf's view of a workload: its loss type, its batches as AlgoPerf's dicts, and the
    model's output on AlgoPerf `inputs`. Mixed into a `harness.workload.Workload` subclass.

    Attributes:
      algoperf_loss_type: the name of the AlgoPerf `LossType` member whose `loss_fn`, applied to
        `algoperf_forward`'s output, gives this workload's training loss (up to the label
        smoothing, which AlgoPerf submissions choose).
    """

    algoperf_loss_type: ClassVar[str]

    def algoperf_batch(self, batch: Any) -> dict[str, Any]:
        """A training batch as AlgoPerf's dict: `inputs` (what `algoperf_forward` takes) and
        `targets` (what the loss compares its output with); `weights`, a mask, where some examples
        do not count. The default serves `(inputs, targets)` batches."""
        inputs, targets = batch
        return {"inputs": inputs, "targets": targets}

    def algoperf_forward(self, model: torch.nn.Module, inputs: Any) -> torch.Tensor:
        """The model's output (logits, or the prediction of a regression) on AlgoPerf `inputs`."""
        autocast = self.autocast  # type: ignore[attr-defined]  # the Workload it is mixed into
        with autocast(next(model.parameters()).device):
            output: torch.Tensor = model(inputs)
            return output
