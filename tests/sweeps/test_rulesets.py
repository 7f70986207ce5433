"""Rulesets cut a sweep into lanes with the same budget for every submission."""

from __future__ import annotations

import json

import pytest

from harness.errors import UsageError
from harness.search_space import Choice, Range, SearchSpace
from sweeps.rulesets import (
    ComputeRuleset,
    ExternalRuleset,
    SelfRuleset,
    WorkloadAtScale,
    make_ruleset,
)
from workloads import WORKLOADS

SPACE = SearchSpace(dims=(Range("lr", 1e-4, 1e-2, True), Choice("beta1", (0.9, 0.95))))
DIGITS = [WorkloadAtScale("digits", "smoke")]


def _lanes(ruleset: object, name: str = "a") -> list:  # type: ignore[type-arg]
    return ruleset.lanes(f"subs/{name}", name, SPACE, DIGITS, "/data")  # type: ignore[attr-defined]


def test_external_lanes_are_n_trials_per_study_and_record_the_search() -> None:
    lanes = _lanes(ExternalRuleset(num_trials=4, num_studies=3, seed=2, search="tpe"))
    assert [(lane.study, lane.trials, lane.budget_s) for lane in lanes] == [
        (s, 4, None) for s in range(3)
    ]
    recorded = json.loads(lanes[0].trial(0).ruleset_json)
    assert recorded == {
        "name": "external",
        "num_studies": 3,
        "num_trials": 4,
        "seed": 2,
        "search": "tpe",
    }


def test_self_lanes_run_the_defaults_once_with_the_larger_budget() -> None:
    lanes = _lanes(SelfRuleset(num_studies=2, budget_factor=3.0))
    budget = WORKLOADS["digits"].configs["smoke"].budget
    assert [lane.trials for lane in lanes] == [1, 1]
    spec = lanes[1].trial(0)
    assert spec.hparams == SPACE.center()
    assert spec.max_steps == 3 * budget.max_steps and spec.max_time_s == 3 * budget.max_time_s
    assert lanes[0].trial(0).seed != lanes[1].trial(0).seed  # studies differ by their seeds


def test_compute_lanes_have_a_time_budget_and_no_trial_count() -> None:
    lanes = _lanes(ComputeRuleset(num_studies=2, budget_s=30.0))
    assert [(lane.trials, lane.budget_s) for lane in lanes] == [(None, 30.0), (None, 30.0)]
    points = [lanes[0].trial(i).hparams for i in range(3)]
    assert len({json.dumps(p) for p in points}) == 3  # quasi-random, not repeated


def test_every_submission_gets_the_same_lanes() -> None:
    ruleset = ExternalRuleset(num_trials=3, num_studies=2, seed=0)
    a, b = _lanes(ruleset, "a"), _lanes(ruleset, "b")
    assert [(x.study, x.trials, x.points_seed) for x in a] == [
        (x.study, x.trials, x.points_seed) for x in b
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "external", "search": "random"}, "--search 'random'"),
        ({"name": "self", "search": "tpe"}, "--ruleset self uses no search algorithm"),
        ({"name": "compute", "search": "quasi-random"}, "--ruleset compute needs --budget-s"),
        ({"name": "budget", "search": "quasi-random"}, "--ruleset 'budget'"),
    ],
)
def test_make_ruleset_refuses_nonsense(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        make_ruleset(
            kwargs["name"],
            trials=2,
            studies=1,
            seed=0,
            search=kwargs["search"],
            budget_s=None,
            budget_factor=3.0,
        )
    assert message in str(info.value)
