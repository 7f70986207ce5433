"""`optbench status`: a sweep's progress per submission x workload, read from its results root.

Counts come from the store (finished trials by status), the live launch records (trials running,
with their SLURM job states from `squeue`) and the manifest (what the sweep will run). The ETA is
the remaining trials times the mean wall time of the finished ones, over the trials in flight.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from harness.results import ResultsStore
from harness.trial import FAULTS, FINISHED, TrialStatus
from sweeps.launchers import unstored_launches
from sweeps.plan import read_manifest

__all__ = ["sweep_status"]


def _slurm_states(job_ids: list[str]) -> dict[str, str]:
    """Job id -> SLURM state for jobs squeue still knows (empty without SLURM)."""
    if not job_ids or shutil.which("squeue") is None:
        return {}
    result = subprocess.run(
        ["squeue", "-h", "-o", "%i %T", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return dict(line.split(maxsplit=1) for line in result.stdout.splitlines() if " " in line)


def sweep_status(results_root: str | Path) -> str:
    """The status table of the sweep in `results_root`, as Markdown."""
    manifest = read_manifest(results_root)
    store = ResultsStore(results_root)
    trials = store.read_trials()
    running = unstored_launches(store)
    states = _slurm_states([str(r["job_id"]) for r in running if r.get("job_id")])
    lanes_of: dict[tuple[str, str], list[int | None]] = defaultdict(list)
    scales_of: dict[str, set[str]] = defaultdict(set)  # a fixed-resource lane runs its ladder's
    for lane in manifest["lanes"]:
        lanes_of[lane["submission"], lane["workload"]].append(lane["trials"])
        scales_of[lane["workload"]].update(json.loads(lane["ruleset_json"]).get("ladder", []))
    # a compute lane has no trial count: its pair's total is unknown (None)
    planned = {
        key: None if None in counts else sum(c or 0 for c in counts)
        for key, counts in lanes_of.items()
    }
    rulesets = {lane["ruleset_json"] for lane in manifest["lanes"]}
    rows, remaining, in_flight = [], 0, 0
    mine = trials[trials["ruleset_json"].isin(rulesets)]
    for (submission, workload), total in sorted(planned.items()):
        name, scale = workload.split("@")
        part = mine[
            (mine["submission"] == submission)
            & (mine["workload"] == name)
            & mine["scale"].isin(scales_of[workload] | {scale})
        ]
        status = Counter(part["status"])
        live = [r for r in running if r.get("lane", "").startswith(f"{submission}|{workload}|")]
        slurm = Counter(states.get(str(r.get("job_id")), "?") for r in live if r.get("job_id"))
        finished = len(part)
        queued = "-" if total is None else str(max(0, total - finished - len(live)))
        if total is not None:
            remaining += max(0, total - finished)
        in_flight += len(live)
        rows.append(
            [
                submission,
                workload,
                str(sum(status[s] for s in FINISHED)),
                str(len(live)),
                queued,
                str(sum(status[s] for s in FAULTS)),
                str(status[str(TrialStatus.DIVERGED)]),
                str(status[str(TrialStatus.STOPPED)]),
                str(status[str(TrialStatus.OVER_BUDGET)]),
                ", ".join(f"{state} {n}" for state, n in sorted(slurm.items())) or "-",
            ]
        )
    header = [
        "submission",
        "workload",
        "done",
        "running",
        "queued",
        "failed",
        "diverged",
        "stopped",
        "over budget",
        "SLURM",
    ]
    lines = [
        f"sweep in {results_root} ({manifest['launcher']} launcher): {' '.join(manifest['argv'])}",
        "",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", _eta(mine, remaining, in_flight)]
    return "\n".join(lines)


def _eta(trials: Any, remaining: int, in_flight: int) -> str:
    walls = trials["wall_time_s"].dropna()
    if remaining == 0:
        return "finished: every planned trial is in the store"
    if walls.empty:
        return f"{remaining} trial(s) to go; ETA unknown until a trial finishes"
    seconds = remaining * float(walls.mean()) / max(1, in_flight)
    return (
        f"{remaining} trial(s) to go, {in_flight} running; ETA ~{seconds / 60:.1f} min "
        f"(mean trial {float(walls.mean()):.1f} s)"
    )
