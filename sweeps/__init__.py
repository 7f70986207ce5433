"""Tuning under equal budgets: search-space points, rulesets, and the Ray Tune sweep driver."""

from sweeps.points import quasi_random_points
from sweeps.rulesets import ExternalRuleset, WorkloadAtScale

__all__ = ["ExternalRuleset", "WorkloadAtScale", "quasi_random_points"]
