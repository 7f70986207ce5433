"""A stand-in for AlgoPerf's package, so AlgoPerf submissions import unmodified (contract level 3).

`harness.algoperf.names.install_algoperf_names` makes this package importable as `algoperf` and as
`algorithmic_efficiency` (the two names AlgoPerf has shipped under) when neither is installed. It
holds only what PyTorch submissions import: `spec` (the API types), `pytorch_utils`
(`pytorch_setup`), `param_utils`, `random_utils`, and `jax_sharding_utils` (which JAX helpers of
some PyTorch submissions import; it alone imports JAX). Nothing here imports torch at import time.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.6.0+optbench"  # the AlgoPerf API version this stand-in follows
