"""`optbench report KIND`: a publishable report built from the results store alone.

    fixed-model     same model for all: claims and speedups, curves, tuning, memory, stability,
                    Pareto frontiers (per workload@scale of the fixed-model trials)
    fixed-resource  same memory cap and time budget; model size and batch chosen from the ladder
    pareto          the Pareto frontiers only
    scaling         tuned LR and speedup vs model size over a workload's ladder (`--workload`)

Every report starts with an overview: what was compared, the provenance of the rows, and the
automatic caveats (under-tuned reference, unequal budgets, single seeds, toy scale).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import pandas as pd

from harness.errors import UsageError
from harness.outputs import REPORT_FOLDER, check_output
from harness.results import ResultsStore
from harness.trial import search_algorithm
from reports import frames
from reports.fixed_model import fixed_model_sections
from reports.fixed_resource import fixed_resource_section
from reports.page import Report, Section, Table, write_report
from reports.pareto import pareto_section
from reports.scaling import ladder_trials, scaling_section

__all__ = ["KINDS", "build_report"]

KINDS = ("fixed-model", "fixed-resource", "pareto", "scaling")
_TITLES = {
    "fixed-model": "Fixed-model report",
    "fixed-resource": "Fixed-resource report",
    "pareto": "Pareto frontiers",
    "scaling": "Scaling study",
}


def build_report(
    kind: str,
    results_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    reference: str | None = None,
    workload: str | None = None,
    scale: str | None = None,
    hardware_class: str | None = None,
    n_boot: int = 2000,
    command_line: str = "",
    out_flag: str = "--out",
) -> Report:
    """Reads `results_root` and writes the `kind` report into `out_dir` (see the module docstring).

    `out_dir` may replace only a report folder optbench wrote (`harness.outputs`); `out_flag`
    names it in messages.

    Raises:
      UsageError: unknown kind, an `out_dir` that may not be replaced (the store itself, a folder
        holding it or inside its own folders, a file, a folder of other files), an empty or
        unreadable store, nothing of the asked kind, mixed hardware classes without
        --hardware-class, or a reference with no trials.
    """
    if kind not in KINDS:
        raise UsageError(f"unknown report {kind!r} (known: {', '.join(KINDS)})")
    check_output(out_dir, REPORT_FOLDER, out_flag, results_root=results_root)
    store = ResultsStore(results_root)
    trials = store.read_trials()
    if trials.empty:
        raise UsageError(f"{results_root}: no trials in this results store")
    where = f"report {kind} of {results_root}"
    trials = _track(trials, kind, workload, scale, where)
    trials = frames.one_hardware_class(trials, hardware_class, where)
    reference = _reference(trials, reference, where)
    evals = store.read_evals()
    evals = evals[evals["trial_id"].isin(set(trials["trial_id"]))]
    sections = [_overview(trials, kind, reference)]
    if kind == "scaling":
        assert workload is not None and scale is not None  # checked by _track
        sections.append(scaling_section(trials, evals, workload, scale, reference, n_boot))
    elif kind == "fixed-resource":
        for name in sorted(trials["workload"].unique()):
            group = trials[trials["workload"] == name]
            sections.append(fixed_resource_section(group, evals, str(name)))
    else:
        for name, group_scale in frames.groups(trials):
            group = trials[(trials["workload"] == name) & (trials["scale"] == group_scale)]
            if kind == "fixed-model":
                if reference not in set(group["submission"]):
                    sections[0].caveats.append(
                        f"{name}@{group_scale}: skipped, {reference} has "
                        "no trials there to compare against"
                    )
                    continue
                sections += fixed_model_sections(group, evals, reference, name, group_scale, n_boot)
            sections.append(pareto_section(group, evals, name, group_scale))
    provenance = _provenance(trials, results_root, command_line)
    return write_report(
        out_dir, f"{_TITLES[kind]} — {results_root}", provenance, sections, flag=out_flag
    )


def _track(
    trials: pd.DataFrame, kind: str, workload: str | None, scale: str | None, where: str
) -> pd.DataFrame:
    """The trials the kind compares, narrowed to --workload / --scale."""
    if workload is not None and workload not in set(trials["workload"]):
        raise UsageError(
            f"{where}: no trials of workload {workload!r} "
            f"(found: {', '.join(sorted(trials['workload'].unique()))})"
        )
    if kind == "scaling":
        if workload is None or scale is None:
            raise UsageError(
                f"{where}: a scaling report needs --workload and --scale (the base "
                "scale of the ladder, e.g. smoke)"
            )
        return ladder_trials(trials, workload, scale)
    wanted = "fixed-resource" if kind == "fixed-resource" else "fixed-model"
    chosen = trials[frames.track_of(trials) == wanted]
    if workload is not None:
        chosen = chosen[chosen["workload"] == workload]
    if scale is not None and kind != "fixed-resource":
        chosen = chosen[chosen["scale"] == scale]
    if chosen.empty:
        raise UsageError(
            f"{where}: no {wanted} trials"
            + (f" of {workload}" if workload else "")
            + (f" at scale {scale}" if scale and kind != "fixed-resource" else "")
        )
    return chosen


def _reference(trials: pd.DataFrame, reference: str | None, where: str) -> str:
    names = sorted(trials["submission"].unique())
    if reference is None:
        if "adamw" in names:
            return "adamw"
        raise UsageError(
            f"{where}: name the reference with --reference (submissions: {', '.join(names)})"
        )
    if reference not in names:
        raise UsageError(
            f"{where}: reference {reference!r} has no trials (submissions: {', '.join(names)})"
        )
    return reference


def _overview(trials: pd.DataFrame, kind: str, reference: str) -> Section:
    per = trials.groupby("submission")
    table = pd.DataFrame(
        {
            "trials": per.size(),
            "workloads": per["workload"].nunique(),
            "studies": per["study"].nunique(),
            "trials per study": trials.groupby(_study_keys(trials, kind))
            .size()
            .groupby("submission")
            .median(),
            "search": per["ruleset_json"].agg(
                lambda s: ", ".join(sorted(set(map(search_algorithm, s))))
            ),
        }
    ).rename_axis("submission")
    caveats = []
    budgets = table["trials per study"]
    if budgets.nunique() > 1:
        caveats.append(
            "unequal tuning budgets: trials per study differ "
            f"({', '.join(f'{k} {v:g}' for k, v in budgets.items())})"
        )
    if reference in budgets and budgets[reference] < budgets.max():
        caveats.append(
            f"the reference {reference} had fewer trials per study than others: an "
            "under-tuned baseline inflates speedups"
        )
    if (table["studies"] < 2).any():
        caveats.append(
            "some submissions ran a single study: no seed spread, no confidence interval"
        )
    small = sorted({str(s).split("-")[0] for s in trials["scale"]} - {"full"})  # ladder rungs too
    if small:
        caveats.append(
            f"{', '.join(small)} scale only: margins at toy scale are illustrative "
            "and may not hold for the full workloads"
        )
    paragraphs = [
        f"{trials['trial_id'].nunique()} trials of {trials['submission'].nunique()} submissions, "
        f"hardware class {', '.join(sorted(trials['hardware_class'].astype(str).unique()))}; "
        f"reference: {reference}. Every number is computed from the results store; times are the "
        "runner's clock (training steps only).",
    ]
    return Section(
        "Overview",
        paragraphs=paragraphs,
        caveats=caveats,
        tables=[Table(f"overview-{kind}", "what was compared", table)],
    )


def _study_keys(trials: pd.DataFrame, kind: str) -> list[pd.Series]:
    """What one study is: a fixed-resource study spans the ladder's rungs, so not keyed by scale."""
    keys = [trials["submission"], trials["workload"], trials["study"]]
    return keys if kind == "fixed-resource" else [*keys, trials["scale"]]


def _provenance(trials: pd.DataFrame, root: str | os.PathLike[str], command_line: str) -> list[str]:
    def values(column: str) -> str:
        found = sorted({str(v) for v in trials[column].dropna() if str(v)})
        return (
            ", ".join(found[:4]) + (f" (+{len(found) - 4} more)" if len(found) > 4 else "") or "—"
        )

    dirty = int(trials["git_dirty"].fillna(False).astype(bool).sum())
    return [
        f"Results: {root}; {len(trials)} trials recorded {values('created_utc')[:10]}… by "
        f"optbench {values('optbench_version')} at commit(s) {values('git_commit')}"
        + (f" ({dirty} from a dirty tree)" if dirty else ""),
        f"Packages: torch {values('torch_version')}, jax {values('jax_version')}, optax "
        f"{values('optax_version')}; devices: {values('device_name')}; CPUs: {values('cpu_model')}",
        f"Built {datetime.now(UTC).isoformat(timespec='seconds')} by "
        f"`{command_line or ' '.join(['optbench', *sys.argv[1:]])}` from the results store alone.",
    ]
