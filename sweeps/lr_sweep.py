"""Learning-rate sweeps: where each reference's tuned lr lies, and where its lr range belongs.

For each (reference, workload) this trains a log grid of learning rates, every other
hyperparameter at the reference's search-space centre, a few seeds each, for the workload's whole
budget (no stop at the target), each trial in its own process through the runner (the isolation
that `sweeps.calibrate` uses), at most `--parallel` at once, into a results store: a re-run skips
the trials already stored. The grid is a fixed lattice of `--step-decades` (1/4 decade:
1, 1.78, 3.16, 5.62 x 10^k) spanning the reference's current lr range and `--margin-decades`
beyond each end, so sweeps around different ranges share their common points.

The runner refuses a point outside a submission's search space, so each reference trains from a
copy of its folder whose `lr` dimension is widened to `LR_SWEEP_BOUNDS` (its `submission.py`,
its other dimensions and so its update rule unchanged); the copy's bytes do not depend on the
current range, so its source hash, and every trial id, stays the same when the range moves.

Per (reference, workload) the **near-best lrs** are those whose median steps to the target (the
quantity the benchmark scores) are within one eval interval, their resolution, of the fewest (all
lrs where none reaches the target), and the **best lr** is the near-best one with the best median
final metric: as fast as the fastest within what steps to target can tell apart, and the best
trained at the end of the budget (steps to target alone would pick among equals by eval noise).

Per reference the **proposed range** keeps the current range's log-width: it is the current range
where every best lr over the workloads swept already lies at least `MIN_INSIDE_DECADES` inside it,
else the range centred between the smallest and largest best lr (on the quarter-decade lattice
where that keeps them that far inside); `fits` says whether every best lr is that far inside the
proposal.

    python -m sweeps.lr_sweep --submissions adamw,muon --workloads digits,nanogpt
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from harness.errors import OptbenchError, UsageError
from harness.search_space import Range
from harness.submission import load_submission, resolve_submission
from harness.target import Direction
from harness.trial import TrialSpec
from workloads import WORKLOADS, get_workload

__all__ = [
    "LR_SWEEP_BOUNDS",
    "MIN_INSIDE_DECADES",
    "RULESET",
    "LrPoint",
    "PairSweep",
    "Placement",
    "lr_grid",
    "place_range",
    "placements",
    "read_sweeps",
    "sweep_json",
    "sweep_markdown",
    "sweep_rows",
    "sweep_specs",
    "widened_copies",
]

RULESET = "lr-sweep"
LR_SWEEP_BOUNDS = (1e-7, 1e3)  # the widened copies' lr range: every grid point lies inside
MIN_INSIDE_DECADES = 0.5


@dataclass(frozen=True, slots=True)
class LrPoint:
    """One learning rate of one (reference, workload) sweep, over its seeds.

    Attributes:
      lr: the learning rate.
      seeds: how many seeds ran.
      final_metric: the median final metric (nan where no seed finished with a finite one).
      steps_to_target: the median steps to the target (inf where the median seed missed it).
      reached: how many seeds reached the target.
    """

    lr: float
    seeds: int
    final_metric: float
    steps_to_target: float
    reached: int


@dataclass(frozen=True, slots=True)
class PairSweep:
    """The sweep of one reference on one workload, its points in increasing lr.

    Attributes:
      band_steps: the resolution of steps to target: the workload's eval cadence, within which
        two lrs' steps to target do not differ measurably.
    """

    submission: str
    workload: str
    metric: str
    minimize: bool
    band_steps: int
    points: tuple[LrPoint, ...]

    @property
    def near_best(self) -> tuple[LrPoint, ...]:
        """The lrs within `band_steps` of the fewest median steps to the target (all of them
        where no lr reaches it)."""
        fastest = min(point.steps_to_target for point in self.points)
        if not math.isfinite(fastest):
            return self.points
        return tuple(p for p in self.points if p.steps_to_target <= fastest + self.band_steps)

    @property
    def best_lr(self) -> float:
        """The near-best lr with the best median final metric: as fast as the fastest within
        the resolution of steps to target, and the best trained at the end of the budget."""

        def badness(point: LrPoint) -> float:
            final = point.final_metric if self.minimize else -point.final_metric
            return final if math.isfinite(final) else math.inf

        return min(self.near_best, key=badness).lr


@dataclass(frozen=True, slots=True)
class Placement:
    """One reference's lr range now, its best lr per workload, and the range proposed.

    Attributes:
      submission: the reference.
      range_now: the `lr` range of its `search_space.json`.
      best_lr: the best lr per workload swept.
      proposed: the range of the same log-width centred between the best lrs.
      fits: whether every best lr lies at least `MIN_INSIDE_DECADES` inside `proposed`.
    """

    submission: str
    range_now: tuple[float, float]
    best_lr: dict[str, float]
    proposed: tuple[float, float]
    fits: bool

    def margins_decades(self, lr: float, bounds: tuple[float, float]) -> tuple[float, float]:
        """How many decades `lr` lies above the low end and below the high end of `bounds`."""
        return math.log10(lr / bounds[0]), math.log10(bounds[1] / lr)


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


def lr_grid(low: float, high: float, step_decades: float, margin_decades: float) -> list[float]:
    """The lattice points 10^(k·step) (3 significant digits) from `margin_decades` below `low`
    to `margin_decades` above `high`, both ends included (rounded outward onto the lattice)."""
    first = math.floor(round((math.log10(low) - margin_decades) / step_decades, 6))
    last = math.ceil(round((math.log10(high) + margin_decades) / step_decades, 6))
    return [_round3(10 ** (k * step_decades)) for k in range(first, last + 1)]


def place_range(
    best_lrs: list[float], width_decades: float, now: tuple[float, float] | None = None
) -> tuple[tuple[float, float], bool]:
    """The range of `width_decades` for `best_lrs`, and whether each lies well inside it.

    The range `now` where it already holds every best lr `MIN_INSIDE_DECADES` from each end (a
    range moves only where it must); else centred between the smallest and largest best lr, on
    the quarter-decade lattice next to that middle where that still holds them so far inside.
    """
    if now is not None and all(_inside(lr, now) for lr in best_lrs):
        return now, True
    logs = [math.log10(lr) for lr in best_lrs]
    middle = (min(logs) + max(logs)) / 2
    lattice = sorted(
        {math.floor(middle * 4) / 4, math.ceil(middle * 4) / 4}, key=lambda c: abs(c - middle)
    )
    for centre in [*lattice, middle]:
        bounds = (
            _round3(10 ** (centre - width_decades / 2)),
            _round3(10 ** (centre + width_decades / 2)),
        )
        if all(_inside(lr, bounds) for lr in best_lrs):
            return bounds, True
    return bounds, False


def _inside(lr: float, bounds: tuple[float, float]) -> bool:
    slack = 1e-3  # decades: the lattice's 3-digit rounding
    return min(math.log10(lr / bounds[0]), math.log10(bounds[1] / lr)) >= MIN_INSIDE_DECADES - slack


def _lr_range(name: str) -> Range:
    """The `lr` range of a reference's search space.

    Raises:
      UsageError: the space has no log-scaled `lr` range to sweep.
    """
    space = load_submission(name).search_space
    lr = next((d for d in space.dims if d.name == "lr"), None)
    if not isinstance(lr, Range) or not lr.is_log:
        raise UsageError(f"{space.source}: no log-scaled 'lr' range to sweep")
    return lr


@contextmanager
def widened_copies(names: list[str]) -> Iterator[dict[str, Path]]:
    """Temporary copies of the references' folders with `lr` widened to `LR_SWEEP_BOUNDS`."""
    with tempfile.TemporaryDirectory(prefix="optbench-lr-sweep-") as tmp:
        copies = {}
        for name in names:
            _lr_range(name)
            folder = resolve_submission(name)
            copy = Path(tmp) / folder.name
            copy.mkdir()
            shutil.copyfile(folder / "submission.py", copy / "submission.py")
            space = json.loads((folder / "search_space.json").read_text())
            space["lr"] = {"min": LR_SWEEP_BOUNDS[0], "max": LR_SWEEP_BOUNDS[1], "scaling": "log"}
            (copy / "search_space.json").write_text(json.dumps(space, indent=2) + "\n")
            copies[name] = copy
        yield copies


def _ruleset_json(max_steps: int | None) -> str:
    return json.dumps({"name": RULESET, "max_steps": max_steps}, sort_keys=True)


def sweep_specs(
    copies: dict[str, Path],
    workloads: list[str],
    lrs: dict[str, list[float]],
    seeds: int,
    data_dir: str,
    max_steps: int | None = None,
    command_line: str = "",
) -> list[TrialSpec]:
    """One full-budget trial per (reference, workload, lr, seed) at the space's centre."""
    specs = []
    for name, copy in copies.items():
        centre = load_submission(name).search_space.center()
        for workload in workloads:
            for lr in lrs[name]:
                point = TrialSpec.canonical_hparams({**centre, "lr": lr})
                specs += [
                    TrialSpec(
                        workload=workload,
                        scale="smoke",
                        submission=str(copy),
                        hparams_json=point,
                        seed=seed,
                        data_dir=data_dir,
                        ruleset=RULESET,
                        ruleset_json=_ruleset_json(max_steps),
                        max_steps=max_steps,
                        stop_at_target=False,
                        command_line=command_line,
                    )
                    for seed in range(seeds)
                ]
    return specs


def sweep_rows(
    trials: pd.DataFrame,
    copies: dict[str, Path],
    workloads: list[str],
    max_steps: int | None = None,
) -> pd.DataFrame:
    """Every stored sweep trial of the copies' update rules on `workloads` (all grids and seeds
    run so far; the newest row per trial), with its `lr` as a column."""
    hashes = {load_submission(copy).source_hash for copy in copies.values()}
    rows = trials[
        (trials["ruleset"] == RULESET)
        & trials["submission_hash"].isin(hashes)
        & trials["workload"].isin(workloads)
        & (trials["ruleset_json"] == _ruleset_json(max_steps))
    ]
    rows = rows.assign(lr=rows["hparams_json"].map(lambda text: float(json.loads(text)["lr"])))
    return rows.sort_values("created_utc").groupby(["trial_id"]).tail(1)


def read_sweeps(rows: pd.DataFrame, names: list[str], workloads: list[str]) -> list[PairSweep]:
    """One sweep per (reference, workload) with rows in `rows` (`sweep_rows`), in that order."""

    sweeps = []
    for name in names:
        for workload in workloads:
            config = WORKLOADS[workload].configs["smoke"]
            target, band = config.target, config.eval_every_steps
            minimize = target.direction is Direction.MIN
            pair = rows[(rows["submission"] == name) & (rows["workload"] == workload)]
            points = tuple(_point(lr, group) for lr, group in sorted(pair.groupby("lr")))
            if points:
                sweeps.append(PairSweep(name, workload, target.metric, minimize, band, points))
    return sweeps


def _point(lr: float, group: pd.DataFrame) -> LrPoint:
    finals = [float(v) for v in group["final_metric"] if v is not None and math.isfinite(v)]
    reached = group["status"] == "target_reached"
    steps = [
        float(s) if ok else math.inf
        for s, ok in zip(group["steps_to_target"], reached, strict=True)
    ]
    return LrPoint(
        lr,
        len(group),
        statistics.median(finals) if finals else math.nan,
        statistics.median(steps),
        int(reached.sum()),
    )


def placements(sweeps: list[PairSweep]) -> list[Placement]:
    """Per reference: its range now, best lr per workload and the proposed range."""
    out = []
    for name in dict.fromkeys(s.submission for s in sweeps):
        lr = _lr_range(name)
        best = {s.workload: s.best_lr for s in sweeps if s.submission == name}
        now = (lr.low, lr.high)
        proposed, fits = place_range(list(best.values()), math.log10(lr.high / lr.low), now)
        out.append(Placement(name, now, best, proposed, fits))
    return out


def _cell(point: LrPoint, metric_digits: int) -> str:
    final = f"{point.final_metric:.{metric_digits}f}" if math.isfinite(point.final_metric) else "–"
    steps = "∞" if math.isinf(point.steps_to_target) else f"{point.steps_to_target:g}"
    return f"{final} · {steps} ({point.reached}/{point.seeds})"


def sweep_markdown(sweeps: list[PairSweep], rows: pd.DataFrame, command: str) -> str:
    """The placement table, then one table per reference: lr rows, a column per workload."""
    places = placements(sweeps)
    lines = [
        "# Learning-rate sweeps of the reference submissions on the smoke workloads\n",
        _provenance(rows, command),
        "## Placement\n",
        "Near-best lrs: those whose median steps to the target are within one eval interval (the "
        "resolution of steps to target) of the fewest (all, where no lr reaches the target). Best "
        "lr: the near-best lr with the best median final metric. "
        "Margins: decades from the best lr to the low and the high end of a range. ✓: at least "
        f"{MIN_INSIDE_DECADES} decade inside at both ends.\n",
        "| submission | workload | near-best lrs | best lr | range now (margins) "
        "| proposed range (margins) |",
        "|---|---|---|---:|---|---|",
    ]
    spans = {(s.submission, s.workload): s.near_best for s in sweeps}
    for place in places:
        for workload, best in place.best_lr.items():
            near = spans[place.submission, workload]
            span = " – ".join(dict.fromkeys(f"{p.lr:.3g}" for p in (near[0], near[-1])))
            cells = [place.submission, workload, span, f"{best:.3g}"]
            for bounds in (place.range_now, place.proposed):
                low, high = place.margins_decades(best, bounds)
                mark = "✓" if _inside(best, bounds) else "✗"
                text = f"[{bounds[0]:.3g}, {bounds[1]:.3g}] ({low:+.2f}, {high:+.2f}) {mark}"
                cells.append(text)
            lines.append("| " + " | ".join(cells) + " |")
    for place in places:
        if not place.fits:
            first = min(place.best_lr, key=place.best_lr.__getitem__)
            last = max(place.best_lr, key=place.best_lr.__getitem__)
            spread = math.log10(place.best_lr[last] / place.best_lr[first])
            width = math.log10(place.range_now[1] / place.range_now[0])
            lines.append(
                f"\n{place.submission}: no range {width:g} decades wide holds every best "
                f"lr {MIN_INSIDE_DECADES} decade inside: they run from "
                f"{place.best_lr[first]:.3g} ({first}) to {place.best_lr[last]:.3g} ({last}), "
                f"{spread:.2f} decades, more than {width - 2 * MIN_INSIDE_DECADES:g}."
            )
    lines.append(
        "\nCell: median final metric · median steps to target (seeds that reached it / "
        "seeds); **bold**: a near-best lr; ▸: inside the range now.\n"
    )
    for place in places:
        pairs = [s for s in sweeps if s.submission == place.submission]
        lrs = sorted({p.lr for s in pairs for p in s.points})
        lines += [
            f"## {place.submission}\n",
            "| lr | " + " | ".join(f"{s.workload} ({s.metric})" for s in pairs) + " |",
            "|---:" + "|---" * len(pairs) + "|",
        ]
        for lr in lrs:
            low, high = place.range_now
            inside = "▸ " if low * (1 - 1e-9) <= lr <= high * (1 + 1e-9) else ""
            cells = []
            for pair in pairs:
                point = next((p for p in pair.points if p.lr == lr), None)
                text = "" if point is None else _cell(point, 4 if pair.minimize else 3)
                cells.append(f"**{text}**" if point in pair.near_best else text)
            lines.append(f"| {inside}{lr:.3g} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def sweep_json(sweeps: list[PairSweep]) -> str:
    """The same numbers as the Markdown, for scripts (inf and nan as null)."""

    def clean(x: float) -> float | None:
        return x if math.isfinite(x) else None

    places = {p.submission: p for p in placements(sweeps)}
    pairs = []
    for sweep in sweeps:
        place = places[sweep.submission]
        best = sweep.best_lr
        pairs.append(
            {
                "submission": sweep.submission,
                "workload": sweep.workload,
                "metric": sweep.metric,
                "grid": [p.lr for p in sweep.points],
                "points": [
                    {
                        **asdict(p),
                        "final_metric": clean(p.final_metric),
                        "steps_to_target": clean(p.steps_to_target),
                    }
                    for p in sweep.points
                ],
                "near_best": [p.lr for p in sweep.near_best],
                "best_lr": best,
                "range_now": list(place.range_now),
                "proposed": list(place.proposed),
                "best_inside_proposed": _inside(best, place.proposed),
                "margins_decades_proposed": [
                    round(m, 3) for m in place.margins_decades(best, place.proposed)
                ],
            }
        )
    record = {
        "min_inside_decades": MIN_INSIDE_DECADES,
        "pairs": pairs,
        "submissions": [
            {
                "submission": p.submission,
                "range_now": list(p.range_now),
                "proposed": list(p.proposed),
                "fits": p.fits,
                "best_lr": p.best_lr,
            }
            for p in places.values()
        ],
    }
    return json.dumps(record, indent=1) + "\n"


def _without_outputs(argv: list[str]) -> str:
    """The command line of a sweep's trials: where its tables go is no part of them."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg == "--out" or arg.startswith("--out="):
            skip = arg == "--out"
            continue
        kept.append(arg)
    return shlex.join(kept)


def _provenance(rows: pd.DataFrame, command: str) -> str:
    commits = ", ".join(sorted(rows["git_commit"].astype(str).str[:10].unique()))
    machines = ", ".join(sorted(rows["cpu_model"].astype(str).unique()))
    runs = {_without_outputs(shlex.split(c)) for c in rows["command_line"].astype(str)}
    commands = "\n".join(f"    {c}" for c in sorted(runs))
    threads = ", ".join(str(n) for n in sorted(rows["num_threads"].unique()))
    return (
        f"{len(rows)} trials, {rows['created_utc'].min()} to {rows['created_utc'].max()}, "
        f"commit(s) {commits}, on {machines}; torch threads per trial: {threads}; every "
        f"trial trains its workload's whole smoke budget. Trials run by:\n\n{commands}\n\n"
        f"Tables written by:\n\n    {command}\n"
    )


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (2, with one line, on bad input)."""
    try:
        return _main(argv)
    except OptbenchError as exc:
        print(f"python -m sweeps.lr_sweep: error: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    from tqdm import tqdm

    from harness.atomic import write_text_atomic
    from harness.commandline import default_data_dir
    from harness.isolation import run_isolated
    from harness.results import ResultsStore
    from sweeps.driver import pending_specs
    from sweeps.rulesets import DEFAULT_WORKLOADS, REFERENCES

    parser = argparse.ArgumentParser(
        prog="python -m sweeps.lr_sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--submissions", default=",".join(REFERENCES), help="comma-separated")
    parser.add_argument("--workloads", default=DEFAULT_WORKLOADS, help="comma-separated")
    parser.add_argument("--results", default="results/lr-sweeps", help="results root")
    parser.add_argument("--data-dir", default=default_data_dir(), help="prepared datasets")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per learning rate")
    parser.add_argument("--step-decades", type=float, default=0.25, help="grid step")
    parser.add_argument(
        "--margin-decades",
        type=float,
        default=1.0,
        help="how far the grid reaches beyond each end of the current range",
    )
    parser.add_argument("--lrs", default="", help="comma-separated lrs instead of the grid")
    parser.add_argument("--max-steps", type=int, default=None, help="override the budget")
    parser.add_argument("--parallel", type=int, default=1, help="trials at once")
    parser.add_argument(
        "--table-only", action="store_true", help="run nothing: rebuild the tables from the store"
    )
    parser.add_argument(
        "--out",
        default="",
        help="Markdown table (default RESULTS/lr-sweep.md; the JSON goes beside it)",
    )
    args = parser.parse_args(argv)
    names = [s for s in args.submissions.split(",") if s]
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        raise UsageError(
            f"--workloads: unknown {', '.join(unknown)} (known: {', '.join(sorted(WORKLOADS))})"
        )
    if args.seeds < 1 or args.parallel < 1 or args.step_decades <= 0 or args.margin_decades < 0:
        raise UsageError(
            "--seeds and --parallel must be >= 1, --step-decades > 0, --margin-decades >= 0"
        )
    try:
        fixed = [float(x) for x in args.lrs.split(",") if x]
    except ValueError:
        raise UsageError(f"--lrs {args.lrs!r}: give comma-separated numbers") from None
    if any(not LR_SWEEP_BOUNDS[0] <= x <= LR_SWEEP_BOUNDS[1] for x in fixed):
        raise UsageError(f"--lrs {args.lrs!r}: each lr must lie in {list(LR_SWEEP_BOUNDS)}")
    root = str(Path(args.results).resolve())
    out = Path(args.out or Path(args.results) / "lr-sweep.md")
    with widened_copies(names) as copies:
        lrs = {
            n: fixed
            or lr_grid((r := _lr_range(n)).low, r.high, args.step_decades, args.margin_decades)
            for n in names
        }
        command = _without_outputs(["python", "-m", "sweeps.lr_sweep", *(argv or sys.argv[1:])])
        data_dir = str(Path(args.data_dir).resolve())
        specs = sweep_specs(copies, workloads, lrs, args.seeds, data_dir, args.max_steps, command)
        if not args.table_only:
            todo = pending_specs(specs, root)
            with tqdm(
                total=len(specs),
                initial=len(specs) - len(todo),
                desc="lr-sweep trials",
                unit="trial",
            ) as bar:
                run_isolated(
                    todo,
                    root,
                    get_workload,
                    max_parallel=args.parallel,
                    on_done=lambda _: bar.update(),
                )
        rows = sweep_rows(ResultsStore(root).read_trials(), copies, workloads, args.max_steps)
        sweeps = read_sweeps(rows, names, workloads)
    if not sweeps:
        raise UsageError(
            f"{args.results}: no lr-sweep trials of {', '.join(names)} on {', '.join(workloads)}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, sweep_markdown(sweeps, rows, command))
    write_text_atomic(out.with_suffix(".json"), sweep_json(sweeps))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
