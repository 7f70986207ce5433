"""A small AlgoPerf-format submission for tests: plain SGD through the workload's `model_fn` and
`loss_fn`, with lines a test adds (`sgd_source`)."""

from __future__ import annotations

import textwrap

__all__ = ["SGD_SPACE", "sgd_source"]

# {header} adds module lines, {init} lines to init_optimizer_state, {update} to update_params.
_SGD = """
import torch
from algoperf import spec
{header}

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    {init}
    return {{"optimizer": torch.optim.SGD(model_params.parameters(), lr=0.05)}}


def update_params(workload, current_param_container, current_params_types, model_state,
                  hyperparameters, batch, loss_type, optimizer_state, eval_results, global_step,
                  rng, train_state=None):
    {update}
    optimizer_state["optimizer"].zero_grad()
    logits, model_state = workload.model_fn(current_param_container, batch, model_state,
                                            spec.ForwardPassMode.TRAIN, rng, True)
    loss = workload.loss_fn(batch["targets"], logits)
    (loss["summed"] / loss["n_valid_examples"]).backward()
    optimizer_state["optimizer"].step()
    return optimizer_state, current_param_container, model_state


def get_batch_size(workload_name):
    return 64


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state,
                   hyperparameters, global_step, rng):
    return next(input_queue)
"""
SGD_SPACE = {"learning_rate": {"feasible_points": [0.05]}}


def sgd_source(header: str = "", init: str = "pass", update: str = "pass") -> str:
    """The SGD submission's `submission.py` with these lines added (each a one-line statement
    for `init` and `update`; `header` any module-level text)."""
    return _SGD.format(header=textwrap.dedent(header), init=init, update=update)
