"""Workload tests train small models: one torch thread, as trials do (two cores run two trials)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Oversubscribed OpenMP threads make these tiny models ~10x slower on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def fake_cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding a small random CIFAR-10 in the prepared layout (2,048 / 512 images)."""
    import numpy as np

    root = tmp_path_factory.mktemp("fake-cifar")
    folder = root / "cifar10"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 2048), ("test", 512)):
        np.save(
            folder / f"{split}_images.npy", rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        )
        np.save(folder / f"{split}_labels.npy", rng.integers(0, 10, n, dtype=np.uint8))
    return root
