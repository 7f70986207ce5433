"""Search spaces in AlgoPerf's JSON format, and the check that a point lies inside one.

Two forms are accepted in `search_space.json`:

* a mapping from hyperparameter name to either a range
  `{"min": 1e-4, "max": 1e-2, "scaling": "log" | "linear"}` or a set
  `{"feasible_points": [0.9, 0.95]}`;
* a list of fixed points, each a mapping from name to value (`self`-tuning style).

`unit_to_point` maps a point of the unit cube to the space (log ranges uniformly in log space), so
any quasi-random sequence on [0, 1)^d gives points of the space.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ContractError, UsageError

__all__ = ["Choice", "Range", "SearchSpace", "load_search_space"]


@dataclass(frozen=True, slots=True)
class Range:
    """A continuous hyperparameter in [low, high], sampled uniformly or log-uniformly."""

    name: str
    low: float
    high: float
    is_log: bool

    def from_unit(self, u: float) -> float:
        if self.is_log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        slack = 1e-9 * max(abs(self.low), abs(self.high))
        return self.low - slack <= value <= self.high + slack


@dataclass(frozen=True, slots=True)
class Choice:
    """A hyperparameter taking one of a finite set of values."""

    name: str
    values: tuple[Any, ...]

    def from_unit(self, u: float) -> Any:
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def contains(self, value: Any) -> bool:
        return value in self.values


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """A submission's search space: named dimensions, or a list of fixed points.

    Attributes:
      dims: the dimensions, in file order (empty when `fixed_points` is given).
      fixed_points: explicit points (AlgoPerf's list form), or empty.
      source: the file it was read from, for error messages.
    """

    dims: tuple[Range | Choice, ...]
    fixed_points: tuple[Mapping[str, Any], ...] = ()
    source: str = "<search space>"

    @property
    def num_dims(self) -> int:
        return len(self.dims)

    def unit_to_point(self, u: Sequence[float], index: int) -> dict[str, Any]:
        """The point for unit-cube coordinates `u` (or fixed point `index`, cycling)."""
        if self.fixed_points:
            return dict(self.fixed_points[index % len(self.fixed_points)])
        return {d.name: d.from_unit(float(x)) for d, x in zip(self.dims, u, strict=True)}

    def center(self) -> dict[str, Any]:
        """The space's centre: geometric middle of log ranges, middle of linear ones,
        first choice."""
        if self.fixed_points:
            return dict(self.fixed_points[0])
        point: dict[str, Any] = {}
        for dim in self.dims:
            point[dim.name] = dim.from_unit(0.5) if isinstance(dim, Range) else dim.values[0]
        return point

    def validate_point(self, point: Mapping[str, Any]) -> None:
        """Raises ContractError naming the first hyperparameter that is missing or out of range."""
        if self.fixed_points:
            if dict(point) not in [dict(p) for p in self.fixed_points]:
                raise ContractError(f"{self.source}: point {dict(point)} is not one of its points")
            return
        names = {d.name for d in self.dims}
        unknown = sorted(set(point) - names)
        if unknown:
            raise ContractError(
                f"{self.source}: hyperparameter(s) {unknown} not in the search space "
                f"(declared: {sorted(names)})"
            )
        for dim in self.dims:
            if dim.name not in point:
                raise ContractError(f"{self.source}: hyperparameter {dim.name!r} missing")
            if not dim.contains(point[dim.name]):
                valid = (
                    f"[{dim.low:g}, {dim.high:g}]" if isinstance(dim, Range) else list(dim.values)
                )
                raise ContractError(
                    f"{self.source}: {dim.name}={point[dim.name]!r} is outside {valid}"
                )


def load_search_space(path: Path) -> SearchSpace:
    """Reads and checks a `search_space.json`.

    Raises:
      UsageError: the file is missing, unreadable, a folder, not UTF-8, not JSON, or does not
        follow the format above.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: search space file not found") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder; the search space must be a JSON file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); the search "
            "space must be a JSON file"
        ) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the search space ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if isinstance(raw, list):
        if not raw or not all(isinstance(p, dict) and p for p in raw):
            raise UsageError(f"{path}: a list search space must be a non-empty list of objects")
        return SearchSpace(dims=(), fixed_points=tuple(raw), source=str(path))
    if not isinstance(raw, dict) or not raw:
        raise UsageError(f"{path}: expected a JSON object of hyperparameters or a list of points")
    return SearchSpace(dims=tuple(_parse_dim(path, k, v) for k, v in raw.items()), source=str(path))


_DIM_KEYS = frozenset({"min", "max", "scaling", "feasible_points"})


def _parse_dim(path: Path, name: str, spec: Any) -> Range | Choice:
    where = f"{path}: hyperparameter {name!r}"
    if not isinstance(spec, dict):
        raise UsageError(f"{where}: expected an object with min/max or feasible_points")
    unknown = sorted(set(spec) - _DIM_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {unknown} (allowed: {sorted(_DIM_KEYS)})")
    if "feasible_points" in spec:
        values = spec["feasible_points"]
        if not isinstance(values, list) or not values:
            raise UsageError(f"{where}: feasible_points must be a non-empty list")
        return Choice(name, tuple(values))
    if "min" not in spec or "max" not in spec:
        raise UsageError(f"{where}: needs 'min' and 'max' (or 'feasible_points')")
    low, high, scaling = spec["min"], spec["max"], spec.get("scaling", "linear")
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (low, high)):
        raise UsageError(f"{where}: min and max must be numbers")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise UsageError(f"{where}: min and max must be finite, got {low} and {high}")
    if scaling not in ("log", "linear"):
        raise UsageError(f"{where}: scaling must be 'log' or 'linear', not {scaling!r}")
    if low > high:
        raise UsageError(f"{where}: min {low} is greater than max {high}")
    if scaling == "log" and low <= 0:
        raise UsageError(f"{where}: a log range needs min > 0, got {low}")
    return Range(name, float(low), float(high), scaling == "log")
