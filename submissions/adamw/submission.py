"""AdamW (Loshchilov & Hutter 2019) through torch.optim.AdamW; see README.md for the update rule."""

import torch


def optimizer(params, hp, info):
    return torch.optim.AdamW(
        params.torch_groups(weight_decay=hp["weight_decay"]),
        lr=hp["lr"],
        betas=(hp["beta1"], hp["beta2"]),
        eps=1e-8,
    )
