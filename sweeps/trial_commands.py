"""The one-trial subcommands: `optbench run`, `validate` and `calibrate`.

They sit with the sweeps because they are what a sweep does for one trial: name a workload and a
submission, check both before anything starts (`harness.precheck`), and run the trial in its own
process (`harness.isolation`) with the workloads' builder. Torch and the workloads are imported
by the actions, not here, so the console script starts without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.commandline import (
    Commands,
    add_device,
    add_results,
    default_data_dir,
    nonnegative,
    positive,
)
from harness.errors import UsageError
from harness.outputs import check_results_root
from harness.submission import load_submission
from harness.trial import RulesetName, TrialSpec

if TYPE_CHECKING:  # at run time, imported by the action (it brings scipy)
    from sweeps.rulesets import WorkloadAtScale

__all__ = ["VALIDATE_WORKLOAD", "check_device", "parse_workloads", "register"]

# `validate` builds a level-1 optimizer on digits@smoke's parameters: the cheapest workload to
# set up (scikit-learn's bundled digits, no download), and its 10 tensors carry five roles (conv,
# norm, matrix, bias, head), enough for a role-based split to show a parameter it drops or repeats.
VALIDATE_WORKLOAD = ("digits", "smoke")


def parse_workloads(text: str, scale: str) -> list[WorkloadAtScale]:
    """The workloads a comma-separated `--workloads` names, each at `scale`.

    Raises:
      UsageError: no name, an unknown name, or a scale a workload does not declare.
    """
    from sweeps.rulesets import WorkloadAtScale
    from workloads import get_workload

    names = [w.strip() for w in text.split(",") if w.strip()]
    if not names:
        raise UsageError("--workloads names no workload")
    for name in names:  # refuses an unknown name or scale; builds nothing
        get_workload(name, scale, Path(default_data_dir()))
    return [WorkloadAtScale(name, scale) for name in names]


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.precheck import check_submission
    from workloads import get_workload

    loaded = load_submission(args.submission, allow_self_tuning=True)
    loaded.search_space.validate_point(loaded.search_space.center())
    name, scale = VALIDATE_WORKLOAD
    count = check_submission(loaded, get_workload(name, scale, Path(args.data_dir)))
    is_built = loaded.level == "factory"
    built = f"optimizer built on {name}@{scale}'s {count} parameters; " if is_built else ""
    space = (
        f"search space of {loaded.search_space.num_dims} dims"
        if not loaded.is_self_tuning
        else "self-tuning, no search space: runs with --ruleset self"
    )
    print(f"{loaded.folder}: ok ({loaded.level}; {space}; {built}source {loaded.source_hash[:12]})")
    return 0


def check_device(name: str) -> None:
    """Refuses a CUDA `--device` this machine cannot give (before anything starts).

    Raises:
      UsageError: no CUDA device is visible, or `cuda:N` names one past the visible count.
    """
    if name == "cpu":
        return
    import torch  # here, not at the top: most commands never touch a device

    if not torch.cuda.is_available():
        raise UsageError(
            f"--device {name}: no CUDA device is available to torch "
            f"{torch.__version__}; use --device cpu"
        )
    index, count = torch.device(name).index, torch.cuda.device_count()
    if index is not None and index >= count:
        raise UsageError(
            f"--device {name}: {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1})"
        )


def _parse_hparams(pairs: list[str], base: dict[str, Any]) -> dict[str, Any]:
    point = dict(base)
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--hp {pair!r}: expected NAME=VALUE")
        if key in given:
            raise UsageError(
                f"--hp {key} is given twice ({key}={given[key]} and {pair}): give "
                "each hyperparameter once"
            )
        given[key] = value
        try:
            point[key] = json.loads(value)
        except json.JSONDecodeError:
            point[key] = value
    return point


def cmd_run(args: argparse.Namespace) -> int:
    from harness.isolation import run_isolated
    from harness.precheck import check_trial
    from workloads import get_workload

    workload = parse_workloads(args.workload, args.scale)[0]
    is_self = args.ruleset == RulesetName.SELF
    loaded = load_submission(args.submission, allow_self_tuning=is_self)
    if loaded.is_self_tuning and args.hp:
        raise UsageError(
            f"--hp {args.hp[0]}: {loaded.folder} is self-tuning (no search space); "
            "its hyperparameters are fixed in its code"
        )
    hp = _parse_hparams(args.hp, loaded.search_space.center())
    loaded.search_space.validate_point(hp)
    # "single" and "{}" are TrialSpec's defaults, so the ids of other `run` trials stay as they
    # were.
    ruleset_json = json.dumps({"name": RulesetName.SELF}) if is_self else "{}"
    spec = TrialSpec(
        workload=workload.name,
        scale=workload.scale,
        submission=str(loaded.folder),
        hparams_json=TrialSpec.canonical_hparams(hp),
        seed=args.seed,
        data_dir=args.data_dir,
        max_steps=args.max_steps,
        num_threads=args.threads,
        world_size=args.processes,
        device=args.device,
        command_line=args.command_line,
        ruleset=args.ruleset,
        ruleset_json=ruleset_json,
    )
    check_device(args.device)
    check_results_root(args.results)  # a store that cannot be written: refused before training
    # The user's mistakes are refused here, before the trial's process starts.
    check_trial(spec, get_workload(spec.workload, spec.scale, Path(spec.data_dir)))
    print(f"running {loaded.name} on {workload.name}@{workload.scale} with {hp}", file=sys.stderr)
    results = str(Path(args.results).resolve())
    (summary,) = run_isolated([spec], results, get_workload)
    _refuse_if_needs_cuda(summary, results)
    print(json.dumps(summary, indent=2))
    return 0


def _refuse_if_needs_cuda(summary: dict[str, Any], results: str) -> None:
    """Ends `optbench run` with one line when its trial failed because the submission needs CUDA
    this machine (or the trial's device) lacks (`harness.needs_cuda`); the failed trial stays in
    the store, as every trial does.

    Raises:
      UsageError: the trial's recorded error is such a failure (its first line is the message).
    """
    from harness.needs_cuda import needs_cuda_line
    from harness.results import ResultsStore

    if summary["status"] != "failed":
        return
    trials = ResultsStore(results).read_trials()
    errors = trials.loc[trials["trial_id"] == summary["trial_id"], "error"]
    line = needs_cuda_line(errors.iloc[0]) if len(errors) else None
    if line is not None:
        raise UsageError(line)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from harness.precheck import check_trial
    from sweeps.calibrate import calibrate, calibration_specs
    from workloads import WORKLOADS, get_workload

    name = parse_workloads(args.workload, args.scale)[0].name  # an unknown name or scale: refused
    reference = WORKLOADS[name].reference_hparams.get(args.scale)
    if not reference:
        raise UsageError(f"workload {name!r} declares no reference point at scale {args.scale!r}")
    specs = calibration_specs(
        name, args.scale, args.seeds, args.data_dir, args.device, command_line=args.command_line
    )
    check_device(args.device)
    check_results_root(args.results)
    # The data and the reference point; the seeds differ only in seed.
    check_trial(specs[0], get_workload(name, args.scale, Path(args.data_dir)))
    print(
        f"calibrating {name}@{args.scale}: reference AdamW {reference} x {args.seeds} seeds "
        f"-> {args.results}",
        file=sys.stderr,
    )
    with tqdm(total=len(specs), desc="calibration trials", unit="trial") as bar:
        report = calibrate(specs, args.results, args.parallel, on_done=lambda _: bar.update())
    print(report.markdown())
    return 0


def register(commands: Commands) -> None:
    p = commands.add(
        "validate",
        cmd_validate,
        "check a submission folder against the contract "
        "(a level-1 optimizer is built on digits@smoke's parameters)",
        "optbench validate submissions/adamw",
    )
    p.add_argument("submission", help="submission folder or reference name")
    p.add_argument("--data-dir", default=default_data_dir(), help="where digits' split is cached")

    p = commands.add(
        "run",
        cmd_run,
        "run one trial in its own process and store it",
        "optbench run adamw --workload digits --hp lr=0.003 --seed 1\n"
        "optbench run muon --workload nanogpt --scale full --device cuda --processes 8\n"
        "optbench run path/to/self-tuning-submission --workload digits --ruleset self",
    )
    p.add_argument("submission", help="submission folder or reference name")
    p.add_argument("--workload", required=True, help="workload name")
    p.add_argument("--scale", default="smoke")
    p.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="hyperparameter (repeatable; the rest default to the space's centre)",
    )
    p.add_argument("--seed", type=nonnegative, default=0, help="model init and data order (>= 0)")
    p.add_argument("--max-steps", type=positive, default=None, help="override the step budget")
    p.add_argument("--threads", type=positive, default=1, help="torch CPU threads per process")
    p.add_argument(
        "--processes",
        type=positive,
        default=1,
        help="data-parallel processes (gloo on CPU, NCCL on GPUs; same global batch)",
    )
    add_device(p)
    p.add_argument(
        "--ruleset",
        choices=(str(RulesetName.SINGLE), str(RulesetName.SELF)),
        default=str(RulesetName.SINGLE),
        help="self: record the trial under the self-tuning ruleset; needed for a "
        "submission without a search space (default: %(default)s)",
    )
    p.add_argument("--data-dir", default=default_data_dir())
    add_results(p)

    p = commands.add(
        "calibrate",
        cmd_calibrate,
        "train the reference AdamW over seeds and check the workload's target",
        "optbench calibrate cifar10-94 --scale full --seeds 20 --device cuda",
    )
    p.add_argument("workload", help="workload name")
    p.add_argument("--scale", default="smoke", help="workload scale (default: %(default)s)")
    p.add_argument(
        "--seeds", type=positive, default=5, help="reference runs (default: %(default)s)"
    )
    add_device(p)
    p.add_argument(
        "--parallel",
        type=positive,
        default=1,
        help="trials at once (default 1: timings stay honest)",
    )
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument(
        "--results",
        default="results/calibration",
        help="results root; re-running resumes (default: %(default)s)",
    )
