"""Seeded quasi-random points of a search space, and the external ruleset's trial plan."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import pytest

from harness.search_space import Choice, Range, SearchSpace
from harness.trial import ResolvedTrial, TrialSpec
from sweeps.points import quasi_random_points
from sweeps.rulesets import ExternalRuleset, WorkloadAtScale

# The log range is deliberately not the first dimension: every Halton base must spread it.
SPACE = SearchSpace(
    dims=(
        Choice("beta1", (0.8, 0.9, 0.95)),
        Range("lr", 1e-4, 1e-2, is_log=True),
        Range("weight_decay", 0.0, 0.2, is_log=False),
    ),
    source="test space",
)
GEOMETRIC_CENTRE_LR = 1e-3


def test_points_lie_in_the_space() -> None:
    points = quasi_random_points(SPACE, seed=7, count=50)
    assert len(points) == 50
    for point in points:
        assert set(point) == {"beta1", "lr", "weight_decay"}
        SPACE.validate_point(point)
    assert len({p["lr"] for p in points}) == 50  # a sequence, not one point repeated


# The first points of (SPACE, seed 3), as the sequence gave them when this test was written: a
# point that moves moves every stored trial's id.
GOLDEN_POINTS = [
    {"beta1": 0.9, "lr": 0.00018891726862906475, "weight_decay": 0.159268327118189},
    {"beta1": 0.8, "lr": 0.0008768762845452919, "weight_decay": 0.039268327118188916},
    {"beta1": 0.95, "lr": 0.00407009917080529, "weight_decay": 0.0792683271181889},
]


def test_same_space_and_seed_give_the_same_points_as_ever() -> None:
    points = quasi_random_points(SPACE, 3, 3)
    assert [p["beta1"] for p in points] == [p["beta1"] for p in GOLDEN_POINTS]
    for point, golden in zip(points, GOLDEN_POINTS, strict=True):
        assert point == pytest.approx(golden, rel=1e-12)


def test_different_seeds_give_different_points() -> None:
    a = quasi_random_points(SPACE, 0, 10)
    b = quasi_random_points(SPACE, 1, 10)
    assert all(pa["lr"] != pb["lr"] for pa, pb in zip(a, b, strict=True))
    assert all(pa["weight_decay"] != pb["weight_decay"] for pa, pb in zip(a, b, strict=True))


@pytest.mark.parametrize("n", [1, 5, 16, 33])
def test_first_n_points_are_a_prefix_of_the_first_n_plus_one(n: int) -> None:
    assert quasi_random_points(SPACE, 11, n) == quasi_random_points(SPACE, 11, n + 1)[:n]


def test_point_i_depends_only_on_space_seed_and_i() -> None:
    many = quasi_random_points(SPACE, 5, 40)
    for count in (1, 7, 23):
        assert quasi_random_points(SPACE, 5, count) == many[:count]


def test_zero_points() -> None:
    assert quasi_random_points(SPACE, 0, 0) == []


def test_log_dimension_is_spread_in_log_space() -> None:
    points = quasi_random_points(SPACE, 0, 64)
    below = sum(p["lr"] < GEOMETRIC_CENTRE_LR for p in points)
    # Uniform in linear space would put only ~9% of points below 1e-3.
    assert 26 <= below <= 38
    logs = sorted(math.log10(p["lr"]) for p in points)
    assert logs[0] < -3.8 and logs[-1] > -2.2  # both decades are reached
    decades = Counter(math.floor(x) for x in logs)
    assert 26 <= decades[-4] <= 38 and 26 <= decades[-3] <= 38


def test_linear_dimension_is_spread_linearly() -> None:
    points = quasi_random_points(SPACE, 0, 64)
    below = sum(p["weight_decay"] < 0.1 for p in points)
    assert 26 <= below <= 38


def test_choice_dimension_takes_every_value_about_equally() -> None:
    points = quasi_random_points(SPACE, 2, 30)
    counts = Counter(p["beta1"] for p in points)
    assert set(counts) == {0.8, 0.9, 0.95}
    assert min(counts.values()) >= 6


def test_fixed_point_space_cycles_through_its_points() -> None:
    fixed = SearchSpace(dims=(), fixed_points=({"lr": 1e-3}, {"lr": 2e-3}))
    assert quasi_random_points(fixed, 0, 3) == [{"lr": 1e-3}, {"lr": 2e-3}, {"lr": 1e-3}]
    assert quasi_random_points(fixed, 0, 3) == quasi_random_points(fixed, 9, 3)


# -- the external ruleset ------------------------------------------------------------------------

WORKLOADS = [WorkloadAtScale("digits", "smoke"), WorkloadAtScale("nanogpt", "smoke")]


def _plan(ruleset: ExternalRuleset) -> list[TrialSpec]:
    return ruleset.plan("subs/adamw", SPACE, WORKLOADS, data_dir="/data", command_line="x")


def test_plan_gives_trials_times_studies_times_workloads_specs() -> None:
    ruleset = ExternalRuleset(num_trials=4, num_studies=3, seed=1)
    specs = _plan(ruleset)
    assert len(specs) == 4 * 3 * 2
    cells = Counter((s.workload, s.study) for s in specs)
    assert cells == {(w.name, st): 4 for w in WORKLOADS for st in range(3)}
    assert {(s.study, s.trial_index) for s in specs} == {
        (st, i) for st in range(3) for i in range(4)
    }
    for spec in specs:
        assert spec.submission == "subs/adamw"
        assert spec.scale == "smoke"
        assert spec.data_dir == "/data"
        assert spec.ruleset == "external"
        assert spec.ruleset_json == ruleset.to_json()
        SPACE.validate_point(spec.hparams)


def test_plan_points_per_study_are_identical_across_workloads_and_differ_across_studies() -> None:
    ruleset = ExternalRuleset(num_trials=5, num_studies=3, seed=2)
    specs = _plan(ruleset)
    by_key = {(s.workload, s.study, s.trial_index): s for s in specs}
    for study in range(3):
        expected = quasi_random_points(SPACE, ruleset.point_seed(study), 5)
        for workload in WORKLOADS:
            got = [by_key[(workload.name, study, i)].hparams for i in range(5)]
            assert got == expected
            seeds = [by_key[(workload.name, study, i)].seed for i in range(5)]
            assert seeds == [by_key[(WORKLOADS[0].name, study, i)].seed for i in range(5)]
    study_points = [by_key[("digits", st, 0)].hparams_json for st in range(3)]
    assert len(set(study_points)) == 3


def test_plan_trial_seeds_are_distinct_across_study_and_trial() -> None:
    specs = _plan(ExternalRuleset(num_trials=6, num_studies=4, seed=0))
    seed_of = {(s.study, s.trial_index): s.seed for s in specs}
    assert len(seed_of) == 24
    assert len(set(seed_of.values())) == 24
    assert all(0 <= seed < 2**31 for seed in seed_of.values())
    other = _plan(ExternalRuleset(num_trials=6, num_studies=4, seed=1))
    assert {s.seed for s in other}.isdisjoint(seed_of.values())


def _ids(seed: int) -> list[str]:
    plan = _plan(ExternalRuleset(num_trials=3, num_studies=2, seed=seed))
    return [ResolvedTrial(spec, 1, "adamw", "hash").trial_id for spec in plan]


def test_plan_trial_ids_are_what_they_were_and_unique() -> None:
    ids = _ids(4)
    # Pinned when this test was written: a sweep re-run finds its stored trials by these ids.
    assert ids[:3] == ["8da8f7e437a490f09af9", "9f34ad50baf973c8dc6f", "31dbe2fe313ef0605f05"]
    assert hashlib.sha256(",".join(ids).encode()).hexdigest()[:16] == "59dc0a4c897de53e"
    assert len(set(ids)) == len(ids) == 12
    assert set(ids).isdisjoint(_ids(5))  # another sweep seed is another sweep: no id is shared


def test_plan_more_trials_later_keeps_the_earlier_trials() -> None:
    """Asking for more trials per study re-plans a superset: done trials keep their points."""
    small = {
        (s.workload, s.study, s.trial_index): s
        for s in _plan(ExternalRuleset(num_trials=3, num_studies=2, seed=0))
    }
    large = {
        (s.workload, s.study, s.trial_index): s
        for s in _plan(ExternalRuleset(num_trials=5, num_studies=2, seed=0))
    }
    for key, spec in small.items():
        assert large[key].hparams_json == spec.hparams_json
        assert large[key].seed == spec.seed
