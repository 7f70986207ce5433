"""SGD with Nesterov momentum through torch.optim.SGD; see README.md for the update rule."""

import torch


def optimizer(params, hp, info):
    return torch.optim.SGD(
        params.torch_groups(weight_decay=hp["weight_decay"]),
        lr=hp["lr"],
        momentum=hp["momentum"],
        nesterov=True,
    )
