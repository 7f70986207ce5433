"""Muon on matrix and conv roles (torch.optim.Muon), AdamW on the rest; see README.md."""

import torch

from harness.contract import Role


class MuonOnMatrices(torch.optim.Muon):
    """torch.optim.Muon over 2-D views of matrix and conv weights (a filter as out x in·kh·kw).

    Each view shares storage with its parameter, so Muon's in-place update lands in the model.
    """

    def __init__(self, params, **kwargs):
        self._views = [(p, torch.nn.Parameter(p.data.view(p.shape[0], -1))) for p in params]
        super().__init__([view for _, view in self._views], **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        for param, view in self._views:
            view.grad = None if param.grad is None else param.grad.view(view.shape)
        return super().step(closure)


def optimizer(params, hp, info):
    muon = MuonOnMatrices(
        params.with_roles(Role.MATRIX, Role.CONV),
        lr=hp["lr"],
        momentum=hp["momentum"],
        nesterov=True,
        weight_decay=hp["weight_decay"],
    )
    groups = [
        {"params": params.with_roles(Role.EMBEDDING, Role.HEAD), "weight_decay": hp["weight_decay"]},
        {"params": params.with_roles(Role.NORM, Role.BIAS, Role.SCALAR), "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    adamw = torch.optim.AdamW(groups, lr=hp["adam_lr"], betas=(0.9, 0.95), eps=1e-8)
    return [muon, adamw]
