"""AlgoPerf's `jax_sharding_utils`: JAX shardings over every visible device, on one `batch` axis.

PyTorch submissions reach it too: AlgoPerf's PyTorch target-setting algorithms take their
learning-rate schedules from JAX sibling modules that import it. optbench never calls it; a
submission that does gets real `jax.sharding` objects. Importing this module imports JAX.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["get_batch_dim_sharding", "get_replicate_sharding", "replicate", "shard_along_batch_dim"]


def _mesh() -> Mesh:
    return Mesh(jax.devices(), ("batch",))


def get_replicate_sharding() -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(_mesh(), PartitionSpec())


def get_batch_dim_sharding() -> NamedSharding:
    """The first axis is split across the devices."""
    return NamedSharding(_mesh(), PartitionSpec("batch"))


def shard_along_batch_dim(tree: Any) -> Any:
    """`tree`'s arrays placed with `get_batch_dim_sharding`."""
    return jax.tree.map(lambda x: jax.device_put(x, get_batch_dim_sharding()), tree)


def replicate(tree: Any) -> Any:
    """`tree`'s arrays placed with `get_replicate_sharding`."""
    return jax.tree.map(lambda x: jax.device_put(x, get_replicate_sharding()), tree)
