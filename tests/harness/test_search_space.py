"""Search spaces: parsing AlgoPerf's JSON format, rejecting malformed files, checking points."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ContractError, UsageError
from harness.search_space import Choice, Range, SearchSpace, load_search_space


def _write(tmp_path: Path, content: Any, raw: bool = False) -> Path:
    path = tmp_path / "search_space.json"
    path.write_text(content if raw else json.dumps(content))
    return path


def _space(tmp_path: Path) -> SearchSpace:
    return load_search_space(
        _write(
            tmp_path,
            {
                "lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
                "weight_decay": {"min": 0.0, "max": 0.2, "scaling": "linear"},
                "beta1": {"feasible_points": [0.9, 0.95]},
            },
        )
    )


# -- parsing -------------------------------------------------------------------------------------


def test_parses_log_and_linear_ranges_and_feasible_points_in_file_order(tmp_path: Path) -> None:
    space = _space(tmp_path)
    assert space.dims == (
        Range("lr", 1e-4, 1e-2, is_log=True),
        Range("weight_decay", 0.0, 0.2, is_log=False),
        Choice("beta1", (0.9, 0.95)),
    )
    assert space.num_dims == 3
    assert space.fixed_points == ()
    assert space.source == str(tmp_path / "search_space.json")


def test_scaling_defaults_to_linear_and_integer_bounds_become_floats(tmp_path: Path) -> None:
    space = load_search_space(_write(tmp_path, {"warmup_steps": {"min": 10, "max": 100}}))
    (dim,) = space.dims
    assert dim == Range("warmup_steps", 10.0, 100.0, is_log=False)
    assert isinstance(dim.low, float) and isinstance(dim.high, float)


def test_parses_list_of_fixed_points(tmp_path: Path) -> None:
    points = [{"lr": 1e-3, "beta1": 0.9}, {"lr": 3e-3, "beta1": 0.95}]
    space = load_search_space(_write(tmp_path, points))
    assert space.dims == ()
    assert [dict(p) for p in space.fixed_points] == points
    # unit_to_point ignores the coordinates and cycles through the points by index
    assert space.unit_to_point((), 0) == points[0]
    assert space.unit_to_point((), 1) == points[1]
    assert space.unit_to_point((), 2) == points[0]
    assert space.center() == points[0]
    space.validate_point(points[1])
    with pytest.raises(ContractError, match="not one of its points"):
        space.validate_point({"lr": 2e-3, "beta1": 0.9})


# -- malformed files -----------------------------------------------------------------------------

MALFORMED_HPARAM = {
    "min_greater_than_max": ({"lr": {"min": 1e-2, "max": 1e-4, "scaling": "log"}}, "greater than"),
    "log_min_zero": ({"lr": {"min": 0.0, "max": 1e-2, "scaling": "log"}}, "min > 0"),
    "log_min_negative": ({"lr": {"min": -1.0, "max": 1e-2, "scaling": "log"}}, "min > 0"),
    "bad_scaling": ({"lr": {"min": 1e-4, "max": 1e-2, "scaling": "exp"}}, "'exp'"),
    "missing_max": ({"lr": {"min": 1e-4, "scaling": "log"}}, "'max'"),
    "missing_min": ({"lr": {"max": 1e-2}}, "'min'"),
    "empty_feasible_points": ({"lr": {"feasible_points": []}}, "non-empty"),
    "feasible_points_not_list": ({"lr": {"feasible_points": 0.9}}, "non-empty list"),
    "string_bound": ({"lr": {"min": "1e-4", "max": 1e-2}}, "numbers"),
    "bool_bound": ({"lr": {"min": True, "max": 2}}, "numbers"),
    "spec_not_object": ({"lr": 1e-3}, "expected an object"),
}


@pytest.mark.parametrize("content, detail", MALFORMED_HPARAM.values(), ids=MALFORMED_HPARAM.keys())
def test_malformed_hyperparameter_names_file_and_hyperparameter(
    tmp_path: Path, content: Any, detail: str
) -> None:
    # a valid dimension first, so the error must point at the bad one, not the first one
    path = _write(tmp_path, {"beta1": {"feasible_points": [0.9]}, **content})
    with pytest.raises(UsageError) as info:
        load_search_space(path)
    message = str(info.value)
    assert str(path) in message
    assert "'lr'" in message
    assert "'beta1'" not in message
    assert detail in message


MALFORMED_FILE = {
    "not_json": ('{"lr": {"min": 1e-4,', "not valid JSON"),
    "top_level_number": ("3.5", "expected a JSON object"),
    "top_level_string": ('"lr"', "expected a JSON object"),
    "empty_object": ("{}", "expected a JSON object"),
    "empty_list": ("[]", "non-empty list"),
    "list_of_numbers": ("[1, 2]", "non-empty list of objects"),
    "list_with_empty_point": ('[{"lr": 1e-3}, {}]', "non-empty list of objects"),
}


@pytest.mark.parametrize("text, detail", MALFORMED_FILE.values(), ids=MALFORMED_FILE.keys())
def test_malformed_file_names_the_file(tmp_path: Path, text: str, detail: str) -> None:
    path = _write(tmp_path, text, raw=True)
    with pytest.raises(UsageError) as info:
        load_search_space(path)
    assert str(path) in str(info.value)
    assert detail in str(info.value)


def test_missing_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(UsageError, match="not found") as info:
        load_search_space(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        '{"lr": {"min": NaN, "max": 1e-2}}',
        '{"lr": {"min": 1e-4, "max": Infinity, "scaling": "log"}}',
    ],
    ids=["nan_min", "infinite_max"],
)
def test_non_finite_bounds_are_rejected(tmp_path: Path, text: str) -> None:
    with pytest.raises(UsageError, match="'lr'"):
        load_search_space(_write(tmp_path, text, raw=True))


def test_unknown_key_in_a_dimension_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, {"lr": {"min": 1e-4, "max": 1e-2, "scale": "log"}})
    with pytest.raises(UsageError, match="'scale'"):
        load_search_space(path)


# -- validate_point ------------------------------------------------------------------------------


def test_validate_point_accepts_points_inside_including_the_ends(tmp_path: Path) -> None:
    space = _space(tmp_path)
    space.validate_point({"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.95})
    space.validate_point({"lr": 1e-4, "weight_decay": 0.0, "beta1": 0.9})
    space.validate_point({"lr": 1e-2, "weight_decay": 0.2, "beta1": 0.9})
    space.validate_point({"lr": 1e-2 * (1 + 1e-12), "weight_decay": 0, "beta1": 0.9})  # rounding


@pytest.mark.parametrize(
    "point, expected",
    [
        ({"lr": 0.5, "weight_decay": 0.1, "beta1": 0.9}, ["lr=0.5", "[0.0001, 0.01]"]),
        ({"lr": 1e-5, "weight_decay": 0.1, "beta1": 0.9}, ["lr=1e-05", "[0.0001, 0.01]"]),
        ({"lr": 1e-3, "weight_decay": -0.1, "beta1": 0.9}, ["weight_decay=-0.1", "[0, 0.2]"]),
        ({"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.8}, ["beta1=0.8", "[0.9, 0.95]"]),
        ({"lr": "1e-3", "weight_decay": 0.1, "beta1": 0.9}, ["lr='1e-3'", "[0.0001, 0.01]"]),
        ({"lr": True, "weight_decay": 0.1, "beta1": 0.9}, ["lr=True"]),
        ({"lr": math.nan, "weight_decay": 0.1, "beta1": 0.9}, ["lr=nan"]),
    ],
    ids=["lr_high", "lr_low", "wd_negative", "beta1_not_feasible", "lr_string", "lr_bool", "nan"],
)
def test_validate_point_out_of_range_names_it_and_the_valid_range(
    tmp_path: Path, point: dict[str, Any], expected: list[str]
) -> None:
    space = _space(tmp_path)
    with pytest.raises(ContractError) as info:
        space.validate_point(point)
    message = str(info.value)
    assert space.source in message
    for part in expected:
        assert part in message


def test_validate_point_unknown_hyperparameter(tmp_path: Path) -> None:
    space = _space(tmp_path)
    with pytest.raises(ContractError) as info:
        space.validate_point({"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "momentum": 0.9})
    message = str(info.value)
    assert "momentum" in message
    assert "['beta1', 'lr', 'weight_decay']" in message  # what would be valid


def test_validate_point_missing_hyperparameter(tmp_path: Path) -> None:
    space = _space(tmp_path)
    with pytest.raises(ContractError, match="'weight_decay' missing"):
        space.validate_point({"lr": 1e-3, "beta1": 0.9})


# -- center and unit_to_point --------------------------------------------------------------------


def test_center_is_geometric_middle_of_log_and_arithmetic_middle_of_linear(tmp_path: Path) -> None:
    centre = _space(tmp_path).center()
    assert centre["lr"] == pytest.approx(1e-3, rel=1e-12)  # sqrt(1e-4 * 1e-2), not 5.05e-3
    assert centre["weight_decay"] == pytest.approx(0.1, rel=1e-12)
    assert centre["beta1"] == 0.9


def test_unit_to_point_maps_zero_and_almost_one_to_the_ends(tmp_path: Path) -> None:
    space = _space(tmp_path)
    low = space.unit_to_point([0.0, 0.0, 0.0], 0)
    assert low == {"lr": pytest.approx(1e-4, rel=1e-12), "weight_decay": 0.0, "beta1": 0.9}
    high = space.unit_to_point([1 - 1e-12] * 3, 0)
    assert high == {
        "lr": pytest.approx(1e-2, rel=1e-9),
        "weight_decay": pytest.approx(0.2, rel=1e-9),
        "beta1": 0.95,
    }
    space.validate_point(low)
    space.validate_point(high)


def test_unit_to_point_is_uniform_in_log_space_for_log_ranges(tmp_path: Path) -> None:
    space = _space(tmp_path)
    quarter = space.unit_to_point([0.25, 0.25, 0.25], 0)
    assert quarter["lr"] == pytest.approx(10**-3.5, rel=1e-12)
    assert quarter["weight_decay"] == pytest.approx(0.05, rel=1e-12)


def test_unit_to_point_needs_one_coordinate_per_dimension(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        _space(tmp_path).unit_to_point([0.5, 0.5], 0)
