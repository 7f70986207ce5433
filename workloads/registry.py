"""The fixed benchmark problems by name: `WORKLOADS`, and `get_workload`, which builds one."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UsageError
from harness.workload import Workload
from workloads.cifar10_94 import Cifar10At94
from workloads.diffusion import Diffusion
from workloads.digits import Digits
from workloads.nanogpt import NanoGPT
from workloads.resnet18_cifar10 import ResNet18Cifar10
from workloads.vit_cifar10 import VitCifar10

__all__ = ["WORKLOADS", "get_workload"]

WORKLOADS: dict[str, type[Workload]] = {
    cls.name: cls for cls in (Digits, NanoGPT, Cifar10At94, Diffusion, ResNet18Cifar10, VitCifar10)
}


def get_workload(name: str, scale: str, data_dir: Path) -> Workload:
    """The workload `name` at `scale`, reading (and building smoke) data under `data_dir`.

    Raises:
      UsageError: for an unknown workload name or a scale the workload does not declare.
    """
    if name not in WORKLOADS:
        known = ", ".join(sorted(WORKLOADS))
        raise UsageError(f"unknown workload {name!r} (known: {known})")
    cls = WORKLOADS[name]
    if scale not in cls.configs:
        known = ", ".join(sorted(cls.configs))
        raise UsageError(f"workload {name!r} has no scale {scale!r} (known: {known})")
    return cls(scale, Path(data_dir))
