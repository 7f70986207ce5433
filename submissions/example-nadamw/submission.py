"""An example submission: NAdamW (Adam with Nesterov momentum and decoupled weight decay)."""

import torch


def optimizer(params, hp, info):
    groups = params.torch_groups(weight_decay=hp["weight_decay"])
    return torch.optim.NAdam(groups, lr=hp["lr"], betas=(hp["beta1"], 0.999), decoupled_weight_decay=True)
