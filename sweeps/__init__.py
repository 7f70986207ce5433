"""Tuning under equal budgets: search-space points, rulesets, and the Ray Tune sweep driver.

Nothing is imported here: a Ray worker that runs a sweep's trials (`sweeps.trainable`) loads
only what supervising a trial needs.
"""
