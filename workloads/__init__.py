"""The fixed benchmark problems: one file per workload, each a `harness.workload.Workload`.

Offers `WORKLOADS` (name to class), `get_workload(name, scale, data_dir)` and the workload classes.
Names are loaded on first use, so the command line registers `workloads.commands` without
importing torch.
"""

from __future__ import annotations

from harness.lazy import lazy_exports

__all__ = [
    "WORKLOADS",
    "Cifar10At94",
    "Diffusion",
    "Digits",
    "NanoGPT",
    "ResNet18Cifar10",
    "VitCifar10",
    "get_workload",
]

_HOME = {
    "WORKLOADS": "registry",
    "get_workload": "registry",
    "Cifar10At94": "cifar10_94",
    "Diffusion": "diffusion",
    "Digits": "digits",
    "NanoGPT": "nanogpt",
    "ResNet18Cifar10": "resnet18_cifar10",
    "VitCifar10": "vit_cifar10",
}


__getattr__ = lazy_exports(__name__, _HOME)
