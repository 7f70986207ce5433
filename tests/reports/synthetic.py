"""A synthetic results store with known answers, for the report tests (no torch, no training).

Every trial is drawn from a closed-form model, so a report built from the store can be checked
against the truths it should recover (the module constants below). The target metric's error at
D tokens (or examples) seen follows a power law, as in scaling-law fits:

    err(D) = c(N) + a · sqrt(q / (s · D))                  loss: value = err; accuracy: 1 − err
    c(N)   = floor + size_term · (N / 1e5)^(−1/2)          a bigger model gets lower
    q      = 1 + 0.5 · ln(lr / lr*)² + 0.02 · ln(wd / 0.01)²   U-shaped LR (and WD) sensitivity
    lr*    = BEST_LR_AT_1E5[sub] · (N / 1e5)^BEST_LR_EXPONENT     (digits: BEST_LR_AT_1E5[sub])
    s      = STEP_SPEEDUP[sub] · (N / NANOGPT_SMOKE_PARAMS)^SPEEDUP_GROWTH[sub]

with a per-seed noise factor on `a`, one eval every EVAL_EVERY_STEPS steps, and train time =
steps × SECONDS_PER_STEP[sub] · (N / 1e5)^0.3. Three parts, each a sweep one report reads:

- fixed-model: nanogpt@smoke and digits@smoke, 3 studies × 6 trials per submission, stopping at
  the target; lion diverges at its largest lr on each workload; one muon trial fails.
- fixed-resource: nanogpt over LADDER under MEMORY_CAP_BYTES and a TIME_BUDGET_S budget, trained
  to the budget; adamw's state (2× params) does not fit smoke-l, so it is `over_budget` there.
- scaling: every rung, 2 studies × 4 trials on an lr grid lr* · 2^k around the optimum, trained
  to MAX_STEPS, so fitting the best lr against N recovers BEST_LR_EXPONENT.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import TRIALS_SCHEMA, ResultsStore

SUBMISSIONS = ("adamw", "muon", "sgd-nesterov", "lion")
REFERENCE = "adamw"
HARDWARE_CLASS = "cpu-1t"
BATCH_SIZE = 16
EVAL_EVERY_STEPS = 20
MAX_STEPS = 400
LADDER = ("smoke-xs", "smoke-s", "smoke-m", "smoke-l")
LADDER_NUM_PARAMS = (100_000, 200_000, 400_000, 800_000)
NANOGPT_SMOKE_PARAMS = 131_072
DIGITS_SMOKE_PARAMS = 19_000

BEST_LR_EXPONENT = -0.5
BEST_LR_AT_1E5 = {"adamw": 0.02, "muon": 0.04, "sgd-nesterov": 0.05, "lion": 0.003}
STEP_SPEEDUP = {"adamw": 1.0, "muon": 1.4, "sgd-nesterov": 0.7, "lion": 1.0}  # at smoke size
SPEEDUP_GROWTH = {"adamw": 0.0, "muon": 0.15, "sgd-nesterov": 0.0, "lion": 0.0}
SECONDS_PER_STEP = {"adamw": 0.05, "muon": 0.06, "sgd-nesterov": 0.045, "lion": 0.047}
STATE_PER_PARAM = {"adamw": 2, "muon": 1, "sgd-nesterov": 1, "lion": 1}  # state bytes / param bytes
ACTIVATION_BYTES_PER_PARAM = 8
MEMORY_CAP_BYTES = 18_000_000  # adamw at smoke-l needs 24 B/param = 19.2 MB; the others 16 MB
TIME_BUDGET_S = 20.0
LARGEST_FIT = {"adamw": "smoke-m", "muon": "smoke-l", "sgd-nesterov": "smoke-l", "lion": "smoke-l"}
DIVERGED = (("lion", "nanogpt"), ("lion", "digits"))  # each at its largest fixed-model lr
FAILED = ("muon", "digits", 1, 2)  # submission, workload, study, trial index

PROVENANCE: dict[str, Any] = {
    "git_commit": "5f0c2a9d1e4b7c3a8f6e2d1c0b9a8f7e6d5c4b3a",
    "git_dirty": False,
    "optbench_version": "0.1.0",
    "python_version": "3.11.7",
    "torch_version": "2.13.0",
    "jax_version": "0.10.2",
    "optax_version": "0.2.8",
    "device_name": "cpu",
    "cpu_model": "Synthetic CPU @ 2.00GHz",
    "hostname": "synthetic-host",
    "slurm_job_id": "",
    "command_line": "optbench sweep (synthetic store for report tests)",
    "created_utc": "2026-11-01T00:00:00+00:00",
}


@dataclass(frozen=True, slots=True)
class _Workload:
    """A workload's target and the constants of its error curve (see the module docstring)."""

    name: str
    metric: str
    target: float
    direction: str  # "min" or "max"
    tokens_per_step: int
    unit: str
    floor: float
    size_term: float
    data_term: float

    def value(self, err: float) -> float:
        return err if self.direction == "min" else 1.0 - err

    def is_met(self, value: float) -> bool:
        return value <= self.target if self.direction == "min" else value >= self.target


NANOGPT = _Workload("nanogpt", "val_loss", 2.17, "min", 16 * 128, "tokens", 1.6, 0.3, 173.0)
DIGITS = _Workload(
    "digits", "test_accuracy", 0.95, "max", BATCH_SIZE, "examples", 0.01, 0.0044, 1.7
)


@dataclass(frozen=True, slots=True)
class _Trial:
    part: str  # fixed-model, fixed-resource or scaling
    workload: _Workload
    scale: str
    num_params: int
    submission: str
    study: int
    index: int
    hparams: dict[str, float]
    ruleset: dict[str, Any]
    time_budget_s: float | None = None  # train to this many seconds instead of MAX_STEPS
    stop_at_target: bool = True
    fate: str = ""  # "diverged" or "failed": forced, whatever the curve says


def best_lr(submission: str, num_params: int) -> float:
    """lr* = BEST_LR_AT_1E5[sub] · (N / 1e5)^BEST_LR_EXPONENT."""
    return BEST_LR_AT_1E5[submission] * (num_params / 1e5) ** BEST_LR_EXPONENT


def step_speedup(submission: str, num_params: int) -> float:
    """Data efficiency s relative to adamw: s = STEP_SPEEDUP · (N / N_smoke)^SPEEDUP_GROWTH."""
    growth = (num_params / NANOGPT_SMOKE_PARAMS) ** SPEEDUP_GROWTH[submission]
    return STEP_SPEEDUP[submission] * growth


def peak_bytes(submission: str, num_params: int) -> int:
    """params + grads + optimizer state + activations, all fp32-sized per parameter."""
    return (8 + 4 * STATE_PER_PARAM[submission] + ACTIVATION_BYTES_PER_PARAM) * num_params


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)])


def _external(num_trials: int, num_studies: int, **extra: Any) -> dict[str, Any]:
    """A ruleset record as `sweeps.rulesets.ExternalRuleset.to_json` writes it (plus `extra`)."""
    return {
        "name": "external",
        "num_trials": num_trials,
        "num_studies": num_studies,
        "search": "quasi-random",
        "seed": 0,
        **extra,
    }


def _fixed_model(seed: int) -> list[_Trial]:
    """Per study, lr in its own sixth of the log range 1e-4..1e-1 by trial index;
    wd in 1e-4..0.3."""
    trials = []
    for workload, n in ((NANOGPT, NANOGPT_SMOKE_PARAMS), (DIGITS, DIGITS_SMOKE_PARAMS)):
        for sub in SUBMISSIONS:
            lane = []
            for study in range(3):
                for index in range(6):
                    rng = _rng(seed, f"hp/{workload.name}/{sub}/{study}/{index}")
                    lr = 10 ** (-4 + 3 * (index + rng.uniform()) / 6)
                    wd_stratum = (5 * index + study) % 6  # another order than lr's
                    wd = 10 ** (-4 + math.log10(3000) * (wd_stratum + rng.uniform()) / 6)
                    hp = {"lr": lr, "weight_decay": wd, "beta1": (0.9, 0.95)[index % 2]}
                    fate = "failed" if (sub, workload.name, study, index) == FAILED else ""
                    lane.append(
                        _Trial(
                            "fixed-model",
                            workload,
                            "smoke",
                            n,
                            sub,
                            study,
                            index,
                            hp,
                            _external(6, 3),
                            fate=fate,
                        )
                    )
            if (sub, workload.name) in DIVERGED:
                top = max(range(len(lane)), key=lambda i: lane[i].hparams["lr"])
                lane[top] = replace(lane[top], fate="diverged")
            trials += lane
    return trials


def _fixed_resource(seed: int) -> list[_Trial]:
    """Each trial picks a rung (bigger ones twice) and an lr within 2x of that rung's optimum."""
    ruleset = _external(
        6,
        2,
        track="fixed-resource",
        memory_cap_bytes=MEMORY_CAP_BYTES,
        time_budget_s=TIME_BUDGET_S,
        ladder=list(LADDER),
    )
    trials = []
    for sub in SUBMISSIONS:
        for study in range(2):
            for index, rung in enumerate((0, 1, 2, 3, 3, 2)):
                n = LADDER_NUM_PARAMS[rung]
                lr = best_lr(sub, n) * 2 ** _rng(seed, f"fr/{sub}/{study}/{index}").uniform(-1, 1)
                hp = {"lr": lr, "weight_decay": 0.01, "beta1": 0.9}
                trials.append(
                    _Trial(
                        "fixed-resource",
                        NANOGPT,
                        LADDER[rung],
                        n,
                        sub,
                        study,
                        index,
                        hp,
                        ruleset,
                        TIME_BUDGET_S,
                        stop_at_target=False,
                    )
                )
    return trials


def _scaling(seed: int) -> list[_Trial]:
    """lr = lr* · 2^k, k = -2..1 (study 0) or -1..2 (study 1): the optimum is on both grids."""
    trials = []
    for sub in SUBMISSIONS:
        for rung, n in zip(LADDER, LADDER_NUM_PARAMS, strict=True):
            for study in range(2):
                for index in range(4):
                    hp = {
                        "lr": best_lr(sub, n) * 2.0 ** (index - 2 + study),
                        "weight_decay": 0.01,
                        "beta1": 0.9,
                    }
                    trials.append(
                        _Trial(
                            "scaling",
                            NANOGPT,
                            rung,
                            n,
                            sub,
                            study,
                            index,
                            hp,
                            _external(4, 2),
                            stop_at_target=False,
                        )
                    )
    return trials


def _simulate(t: _Trial, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One trial's row and eval rows, drawn from the curve of the module docstring."""
    key = f"{t.part}/{t.workload.name}@{t.scale}/{t.submission}/{t.study}/{t.index}"
    trial_id = hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()[:16]
    rng = _rng(seed, key)
    w, n, sub, hp = t.workload, t.num_params, t.submission, t.hparams
    lr_star = best_lr(sub, n) if w is NANOGPT else BEST_LR_AT_1E5[sub]  # digits has no ladder
    q = 1 + 0.5 * math.log(hp["lr"] / lr_star) ** 2
    q += 0.02 * math.log(hp["weight_decay"] / 0.01) ** 2
    a = w.data_term * math.sqrt(q / step_speedup(sub, n)) * math.exp(0.01 * rng.normal())
    c = w.floor + w.size_term * (n / 1e5) ** -0.5
    sec_per_step = SECONDS_PER_STEP[sub] * (n / 1e5) ** 0.3 * math.exp(0.02 * rng.normal())
    max_steps = MAX_STEPS if t.time_budget_s is None else int(t.time_budget_s / sec_per_step)
    row: dict[str, Any] = dict.fromkeys(TRIALS_SCHEMA.names)
    row.update(
        PROVENANCE,
        trial_id=trial_id,
        workload=w.name,
        workload_version=1,
        scale=t.scale,
        submission=sub,
        submission_hash=hashlib.sha256(sub.encode()).hexdigest()[:12],
        hparams_json=json.dumps(hp, sort_keys=True),
        seed=int(rng.integers(2**31)),
        ruleset="external",
        ruleset_json=json.dumps(t.ruleset, sort_keys=True),
        study=t.study,
        trial_index=t.index,
        hardware_class=HARDWARE_CLASS,
        precision="fp32",
        num_threads=1,
        target_metric=w.metric,
        target_value=w.target,
        target_direction=w.direction,
        target_seeds=1,
        target_gate_margin=0.0,
        throughput_unit=w.unit,
        attempts=1,
        restarts=0,
        num_params=n,
        batch_size=BATCH_SIZE,
        memory_cap_bytes=t.ruleset.get("memory_cap_bytes"),
        compile_time_s=0.4,
        params_bytes=4 * n,
        grads_bytes=4 * n,
        optimizer_state_bytes=4 * n * STATE_PER_PARAM[sub],
        peak_source="vmhwm",
        activations_bytes=ACTIVATION_BYTES_PER_PARAM * n,
        peak_bytes=peak_bytes(sub, n),
        throughput_per_s=w.tokens_per_step / sec_per_step,
    )
    if t.fate == "failed":
        row.update(
            status="failed",
            steps=0,
            tokens=0,
            train_time_s=0.0,
            wall_time_s=1.0,
            error="Traceback (most recent call last):\nRuntimeError: synthetic failure",
        )
        return row, []
    if row["memory_cap_bytes"] is not None and row["peak_bytes"] > row["memory_cap_bytes"]:
        row.update(
            status="over_budget",
            steps=1,
            tokens=w.tokens_per_step,
            train_time_s=sec_per_step,
            wall_time_s=1.0 + sec_per_step,
        )
        return row, []
    evals: list[dict[str, Any]] = []
    for index, step in enumerate(range(EVAL_EVERY_STEPS, max_steps + 1, EVAL_EVERY_STEPS)):
        tokens = step * w.tokens_per_step
        value = w.value(c + a / math.sqrt(tokens) * (1 + 0.002 * rng.normal()))
        if t.fate == "diverged" and index == 2:
            value = math.nan
        evals.append(
            {
                **PROVENANCE,
                "trial_id": trial_id,
                "eval_index": index,
                "step": step,
                "tokens": tokens,
                "train_time_s": step * sec_per_step,
                "metric": w.metric,
                "value": value,
            }
        )
        if row["time_to_target_s"] is None and w.is_met(value):
            row.update(
                time_to_target_s=step * sec_per_step, steps_to_target=step, tokens_to_target=tokens
            )
            if t.stop_at_target:
                break
        if not math.isfinite(value):
            break
    values = [e["value"] for e in evals if math.isfinite(e["value"])]
    last = evals[-1]
    status = t.fate or (
        "target_reached" if row["time_to_target_s"] is not None else "budget_exhausted"
    )
    row.update(
        status=status,
        steps=last["step"],
        tokens=last["tokens"],
        train_time_s=last["train_time_s"],
        final_metric=last["value"],
        best_metric=(min if w.direction == "min" else max)(values) if values else None,
        eval_time_s=0.01 * len(evals),
        wall_time_s=last["train_time_s"] + 0.4 + 0.01 * len(evals) + 1.0,
    )
    return row, evals


def write_synthetic_store(root: Path, *, seed: int = 0) -> ResultsStore:
    """Writes every part (fixed-model, fixed-resource, scaling) under `root`; the same every call.

    Args:
      root: the results root (created); a trial already stored there is not written again.
      seed: varies the noise and the sampled hyperparameters, never the truths above.
    """
    store = ResultsStore(root)
    for trial in _fixed_model(seed) + _fixed_resource(seed) + _scaling(seed):
        store.write_trial(*_simulate(trial, seed))
    return store
