"""Tuning under equal budgets: search-space points, rulesets, and the Ray Tune sweep driver, with
the subcommands that run them and the console script on top (`sweeps.cli`).

Nothing is imported here: a Ray worker that runs a sweep's trials (`sweeps.trainable`) loads
only what supervising a trial needs. The modules are imported by name.
"""

__all__: list[str] = []
