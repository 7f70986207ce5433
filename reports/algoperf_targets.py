"""AlgoPerf's scoring constants as AlgoPerf publishes them: the targets file and the held-out list.

A targets file (`workload_targets*.json`, kept in `scoring/` of mlcommons/submissions_algorithms,
e.g. `scoring/workload_targets.json` for v0.6 and `scoring/workload_targets_v05.json` for v0.5)
holds a round's `benchmark_version`, its `base_workloads`, per workload (variants included) the
`target_metric_name`, `validation_target_value` and `step_hint`, and from v0.5 on the round's
`held_out_workloads` (empty in v0.6). AlgoPerf's older held-out file
(`scoring/algoperf_v05/held_out_workloads_algoperf_v05.json`) is a bare JSON list of variant
names. Both are read as published, unmodified.

Where the targets file is looked for, in order, when none is given:

    1. `LOGS/workload_targets*.json`, then `LOGS/../workload_targets*.json`   (exactly one)
    2. `A/scoring/workload_targets*.json` for the nearest ancestor A of LOGS that has any
       (LOGS inside a checkout of AlgoPerf's results repository); among several, the one whose
       `benchmark_version` matches the round a path folder names (`algoperf_v05` -> 0.5), else
       `workload_targets.json`, the repository's current round

Only the standard library is used here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

__all__ = [
    "AlgoPerfTarget",
    "AlgoPerfTargets",
    "base_workload",
    "find_targets_file",
    "is_minimized",
    "load_held_out",
    "load_targets",
]

_LOWER_IS_BETTER = ("loss", "wer", "ppl")
_HIGHER_IS_BETTER = ("accuracy", "ssim", "mean_average_precision", "bleu")
_ROUND_FOLDER = re.compile(r"^algoperf_v(?P<major>\d)(?P<minor>\d+)$")  # algoperf_v05 -> 0.5


@dataclass(frozen=True, slots=True)
class AlgoPerfTarget:
    """One workload's entry of an AlgoPerf targets file.

    Attributes:
      metric_name: the validation metric without prefix (`accuracy`, `wer`, ...).
      value: `validation_target_value`.
      step_hint: AlgoPerf's step budget hint (None when absent).
    """

    metric_name: str
    value: float
    step_hint: int | None


@dataclass(frozen=True, slots=True)
class AlgoPerfTargets:
    """An AlgoPerf targets file (`workload_targets*.json`).

    Attributes:
      path: where it was read from (for messages).
      benchmark_version: its `benchmark_version` (`0.6`).
      base_workloads: its `base_workloads` list, in file order.
      workloads: target per workload name, variants included.
      held_out_workloads: its `held_out_workloads` list; None when the file has no such entry.
    """

    path: Path
    benchmark_version: str
    base_workloads: tuple[str, ...]
    workloads: dict[str, AlgoPerfTarget]
    held_out_workloads: tuple[str, ...] | None = None


def is_minimized(metric_name: str) -> bool:
    """Whether a metric improves downwards, by AlgoPerf's naming (prefixes like `validation/` ok).

    Raises:
      UsageError: the name is neither a known lower- nor higher-is-better metric.
    """
    name = metric_name.split("/")[-1]
    if name in _LOWER_IS_BETTER or "error" in name or name.endswith("_loss"):
        return True
    if name in _HIGHER_IS_BETTER:
        return False
    raise UsageError(
        f"metric {metric_name!r}: unknown direction; lower is better for {_LOWER_IS_BETTER} and "
        f"names containing 'error', higher for {_HIGHER_IS_BETTER}"
    )


def load_targets(path: Path) -> AlgoPerfTargets:
    """Reads an AlgoPerf targets JSON file.

    Raises:
      UsageError: the file is missing, not JSON, or lacks `base_workloads` / `workloads` entries,
        or its `held_out_workloads` is not a list of its workloads.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        workloads = {
            name: AlgoPerfTarget(
                metric_name=str(entry["target_metric_name"]),
                value=float(entry["validation_target_value"]),
                step_hint=int(entry["step_hint"]) if "step_hint" in entry else None,
            )
            for name, entry in raw["workloads"].items()
        }
        base = tuple(str(w) for w in raw["base_workloads"])
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"targets file {path}: cannot read it ({exc})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"targets file {path}: not an AlgoPerf targets file (needs 'base_workloads' and "
            f"'workloads' with target_metric_name and validation_target_value): {exc!r}"
        ) from None
    version = str(raw.get("benchmark_version", ""))
    targets = AlgoPerfTargets(path, version, base, workloads)
    if "held_out_workloads" in raw:
        held = _variant_list(raw["held_out_workloads"], targets, f"targets file {path}")
        targets = AlgoPerfTargets(path, version, base, workloads, held)
    return targets


def load_held_out(path: Path, targets: AlgoPerfTargets) -> tuple[str, ...]:
    """Reads AlgoPerf's held-out workloads file: a JSON list of variant names, as published.

    Raises:
      UsageError: unreadable, not a JSON list of strings, or naming a workload that is not a
        variant of `targets`.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--held-out {path}: cannot read it as JSON ({exc})") from None
    return _variant_list(raw, targets, f"--held-out {path}")


def _variant_list(raw: object, targets: AlgoPerfTargets, where: str) -> tuple[str, ...]:
    """`raw` checked to be a list of variant workloads of `targets`."""
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise UsageError(f"{where}: the held-out workloads must be a JSON list of names")
    for name in raw:
        if name not in targets.workloads or name in targets.base_workloads:
            raise UsageError(
                f"{where}: held-out workload {name!r} is not a variant workload of {targets.path}"
            )
    return tuple(raw)


def base_workload(name: str, targets: AlgoPerfTargets) -> str:
    """The base workload of a (variant) workload: the longest base name equal to it or prefixing it.

    `fastmri_tanh` -> `fastmri`; `imagenet_resnet_silu` -> `imagenet_resnet`; `ogbg` -> `ogbg`.

    Raises:
      UsageError: no base workload of the targets file is a prefix of `name`.
    """
    matches = [b for b in targets.base_workloads if name == b or name.startswith(b + "_")]
    if not matches:
        raise UsageError(
            f"workload {name!r} has no base workload in {targets.path} "
            f"(base workloads: {', '.join(targets.base_workloads)})"
        )
    return max(matches, key=len)


def find_targets_file(log_dir: Path) -> Path:
    """The targets file for the logs in `log_dir` (the search order of the module docstring).

    Raises:
      UsageError: none found, or several where none can be told apart.
    """
    log_dir = Path(log_dir).resolve()
    for folder in (log_dir, log_dir.parent):
        found = sorted(folder.glob("workload_targets*.json"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise UsageError(f"{folder}: several targets files ({names}); pass --targets FILE")
    for ancestor in log_dir.parents:
        found = sorted((ancestor / "scoring").glob("workload_targets*.json"))
        if found:
            return _pick_round(found, log_dir)
    raise UsageError(
        f"no workload_targets*.json in {log_dir}, its parent, or a scoring/ folder above it; "
        "pass --targets FILE"
    )


def _pick_round(found: list[Path], log_dir: Path) -> Path:
    """Among a repository's targets files, the one of the round the log path names."""
    if len(found) == 1:
        return found[0]
    rounds = [m for m in map(_ROUND_FOLDER.match, log_dir.parts) if m]
    if rounds:
        wanted = f"{int(rounds[-1]['major'])}.{int(rounds[-1]['minor'])}"
        matching = [p for p in found if load_targets(p).benchmark_version == wanted]
        if len(matching) == 1:
            return matching[0]
        raise UsageError(
            f"{found[0].parent}: {len(matching)} targets files of benchmark version {wanted} "
            f"(the round {rounds[-1].group(0)} in {log_dir}); pass --targets FILE"
        )
    current = found[0].parent / "workload_targets.json"
    if current in found:
        return current
    names = ", ".join(p.name for p in found)
    raise UsageError(f"{found[0].parent}: several targets files ({names}); pass --targets FILE")
