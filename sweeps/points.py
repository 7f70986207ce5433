"""Seeded quasi-random points of a search space.

Point i of a study depends only on (search space, seed, i): the first n points of a scrambled
Halton sequence (scipy.stats.qmc) are a prefix of the first n + 1, so SLURM array tasks, resumed
sweeps and sweeps that ask for more trials later all agree on every point they share.
"""

from __future__ import annotations

from typing import Any

from harness.search_space import SearchSpace

__all__ = ["quasi_random_points"]


def quasi_random_points(space: SearchSpace, seed: int, count: int) -> list[dict[str, Any]]:
    """The first `count` points of the space's scrambled Halton sequence seeded by `seed`."""
    if space.fixed_points or space.num_dims == 0:
        return [space.unit_to_point((), i) for i in range(count)]
    from scipy.stats import qmc  # here: the command line reads the rulesets before any point

    unit = qmc.Halton(d=space.num_dims, scramble=True, seed=seed).random(count)
    return [space.unit_to_point(row, i) for i, row in enumerate(unit)]
