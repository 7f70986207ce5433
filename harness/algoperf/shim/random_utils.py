"""AlgoPerf's `random_utils` without JAX: keys are numpy uint32 arrays of shape (2,).

optbench passes such a key as `rng` to every submission function; these helpers derive new keys
from it deterministically (numpy's `SeedSequence` mixes the key's words), as AlgoPerf's numpy
fallback does. They do not reproduce JAX's threefry streams.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PRNGKey", "bits", "fold_in", "split"]

_WORD = 2**32


def PRNGKey(seed: int) -> np.ndarray:  # noqa: N802 (AlgoPerf's name)
    """The key of an integer seed: its high and low 32-bit words."""
    seed = int(seed) % (_WORD * _WORD)
    return np.array([seed // _WORD, seed % _WORD], dtype=np.uint32)


def split(rng: Any, num: int = 2) -> np.ndarray:
    """`num` new keys, shape (num, 2), drawn from `rng`."""
    draws = np.random.default_rng(np.asarray(rng, dtype=np.uint32).ravel().tolist())
    return draws.integers(0, _WORD, size=(num, 2), dtype=np.uint32)


def fold_in(rng: Any, data: int) -> np.ndarray:
    """A new key from `rng` and an integer `data` (e.g. a step)."""
    words = np.asarray(rng, dtype=np.uint32).ravel().tolist() + [int(data) % _WORD]
    return np.random.default_rng(words).integers(0, _WORD, size=2, dtype=np.uint32)


def bits(rng: Any) -> int:
    """A 32-bit integer drawn from `rng` (to seed other generators)."""
    words = np.asarray(rng, dtype=np.uint32).ravel().tolist()
    return int(np.random.default_rng(words).integers(0, _WORD, dtype=np.uint32))
