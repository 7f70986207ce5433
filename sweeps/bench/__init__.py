"""Benchmarks of optbench itself, each an `optbench bench` subcommand (`sweeps.bench.commands`):

* `optimizers`: every submission's optimizer step time and state memory, as ratios to AdamW;
* `overhead`: the runner against a minimal hand-written loop on a smoke workload;
* `launchers`: what starting a trial costs through Ray Tune and through SLURM.

Each prints measured numbers and, with `--output FILE.md`, writes them with a JSON beside them.
"""

__all__: list[str] = []
