"""What launching costs: Ray Tune's per-trial overhead, and SLURM's submit-to-start latency.

    optbench bench launchers --trials 6 --output results/bench-launchers/local.md

The same K short trials (digits, `--steps` steps each, one at a time) run three ways, timed by
this process's clock (`time.perf_counter`):

* `direct`: each in a fresh process (`harness.isolation.run_isolated`), no Ray;
* `ray`: through the sweep driver (Ray Tune, local launcher), concurrency 1, after Ray is up;
* `slurm`: through the sweep driver with the SLURM launcher (`--cluster`), if SLURM answers.

Per-trial overhead = (way's seconds - direct seconds) / K. Ray's start-up (`ray.init`) is reported
apart. Submit-to-start: a no-op submitit job reports the time its process started; the latency is
that minus the time just before `submit`, and submit-to-result the time the driver saw the result
(polling every 0.1 s), both on one machine's clock, over `--probes` jobs.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.outputs import (
    BENCH_LAUNCHERS_JSON,
    BENCH_LAUNCHERS_MD,
    check_output,
    write_output_text,
)
from workloads import get_workload

__all__ = ["check_output_path", "measure", "render", "write_report"]


def _specs(trials: int, steps: int, data_dir: str, study: int) -> list[Any]:
    from harness.submission import load_submission
    from harness.trial import TrialSpec

    adamw = load_submission("adamw")
    point = TrialSpec.canonical_hparams(adamw.search_space.center())
    return [
        TrialSpec(
            workload="digits",
            scale="smoke",
            submission=str(adamw.folder),
            hparams_json=point,
            seed=i,
            data_dir=data_dir,
            max_steps=steps,
            study=study,
            trial_index=i,
            stop_at_target=False,
        )
        for i in range(trials)
    ]


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _job_start_time() -> float:
    return time.time()


def _submit_latency(profile_name: str, folder: Path, probes: int) -> dict[str, float]:
    import submitit

    from sweeps.slurm.profile import load_profile

    profile = load_profile(profile_name)
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    executor.update_parameters(**profile.executor_parameters())
    starts, results = [], []
    for _ in range(probes):
        before = time.time()
        job = executor.submit(_job_start_time)
        while not job.done():
            time.sleep(0.1)
        results.append(time.time() - before)
        starts.append(job.result() - before)
    return {
        "submit_to_start_s": statistics.median(starts),
        "submit_to_result_s": statistics.median(results),
    }


def measure(
    trials: int, steps: int, data_dir: str, cluster: str | None, probes: int
) -> dict[str, Any]:
    import ray

    from harness.isolation import run_isolated
    from sweeps.driver import run_lanes, run_sweep
    from sweeps.launchers import SlurmLauncher
    from sweeps.rulesets import lanes_of_specs
    from sweeps.slurm.profile import load_profile

    work = Path(tempfile.mkdtemp(prefix="optbench-bench-launchers-"))
    try:
        warm_up = _specs(1, steps, data_dir, study=99)  # the data, the imports
        run_isolated(warm_up, str(work / "warm"), get_workload)
        out: dict[str, Any] = {"trials": trials, "steps": steps}
        out["direct_s"] = _timed(
            lambda: run_isolated(_specs(trials, steps, data_dir, 0), str(work / "d"), get_workload)
        )
        out["ray_init_s"] = _timed(
            lambda: (
                ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False),
                ray.shutdown(),
            )
        )
        out["ray_s"] = _timed(
            lambda: run_sweep(
                _specs(trials, steps, data_dir, 1), work / "r", num_cpus=1, show_progress=False
            )
        )
        out["ray_overhead_per_trial_s"] = (
            out["ray_s"] - out["ray_init_s"] - out["direct_s"]
        ) / trials
        if cluster and shutil.which("sbatch") and _slurm_answers():
            out.update(_submit_latency(cluster, work / "probe", probes))
            profile = load_profile(cluster)
            lanes = lanes_of_specs(_specs(trials, steps, data_dir, 2), lambda _: "adamw")
            root = work / "s"
            out["slurm_s"] = _timed(
                lambda: run_lanes(
                    lanes,
                    root,
                    SlurmLauncher(profile, str(root)),
                    max_concurrent=1,
                    show_progress=False,
                )
            )
            out["slurm_overhead_per_trial_s"] = (
                out["slurm_s"] - out["ray_init_s"] - out["direct_s"]
            ) / trials
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _slurm_answers() -> bool:
    return (
        subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30, check=False).returncode
        == 0
    )


def render(result: dict[str, Any]) -> str:
    k = result["trials"]
    lines = [
        "# optbench bench launchers",
        "",
        f"Launch overhead: {k} trials of digits, {result['steps']} steps, one at a time",
        "",
        "| measure | seconds |",
        "|---|---|",
    ]
    names = {
        "direct_s": f"{k} trials, fresh process each, no Ray",
        "ray_init_s": "ray.init + shutdown",
        "ray_s": f"{k} trials through Ray Tune (local launcher), incl. Ray start",
        "ray_overhead_per_trial_s": "Ray per-trial overhead",
        "submit_to_start_s": "SLURM submit-to-start (idle cluster, median)",
        "submit_to_result_s": "SLURM submit-to-result of a no-op job (median)",
        "slurm_s": f"{k} trials through Ray Tune + SLURM, incl. Ray start",
        "slurm_overhead_per_trial_s": "SLURM launcher per-trial overhead",
    }
    lines += [f"| {label} | {result[key]:.3f} |" for key, label in names.items() if key in result]
    return "\n".join(lines) + "\n"


def check_output_path(path: Path) -> None:
    """Refuses `--output path` before anything is measured: the Markdown and its JSON may replace
    only a bench launchers report optbench wrote (`harness.outputs`).

    Raises:
      UsageError: one line naming `--output` and what is in the way.
    """
    check_output(path, BENCH_LAUNCHERS_MD, "--output")
    check_output(path.with_suffix(".json"), BENCH_LAUNCHERS_JSON, "--output")


def write_report(result: dict[str, Any], path: Path) -> Path:
    """Writes the Markdown to `path` and the JSON beside it, each atomically; returns the JSON's
    path."""
    sidecar = path.with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_output_text(path, render(result), BENCH_LAUNCHERS_MD, "--output")
    data = {"schema": "optbench.bench_launchers", **result}
    write_output_text(sidecar, json.dumps(data, indent=1) + "\n", BENCH_LAUNCHERS_JSON, "--output")
    return sidecar
