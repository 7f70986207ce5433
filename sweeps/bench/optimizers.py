"""Optimizer step time and state memory of every submission on one fixed parameter set.

The parameter set is the nanogpt workload's GPT (`workloads.nanogpt.GPT`) with its roles, in float32
on the benchmark's device: `full` is `GPT_CONFIGS["full"]` (GPT-2 small's shape, 162M parameters
with the untied head), `reduced` the same structure at width 256, 4 layers, vocab 12,288 (CPU),
and `tiny` a toy for tests. The reduced vocab stays above the 8,192-10,000 caps that preconditioned
optimizers (Shampoo, SOAP) put on a preconditioner's side, so, as at full scale, the embedding and
head keep diagonal statistics on that side: with vocab 8,192 Shampoo would instead eigendecompose
two 8,192² matrices, a cost the full-scale set never has.

No data is read: the loss is synthetic, cheap and elementwise,

    L(θ) = Σ_p Σ_i (½·w_pi·θ_pi² + c_pi·θ_pi)     w_pi ~ U[0.5, 1.5), c_pi ~ 0.01·N(0, 1), fixed

so every level-1 optimizer gets real gradients (∇L = w·θ + c) and level-2 submissions can call
`ctx.loss` (create_graph and Hessian-vector products included: ∇²L = diag(w)) or closures.

Per submission, at its search space's centre point, built by `harness.stepper.make_stepper` on a
fresh copy of the parameters (`WorkloadInfo.max_steps` = 10⁶, so no schedule reaches 0):
`warmup` untimed steps, then `repeats` blocks of `steps` steps, each block timed by
`harness.clock.Clock` (device synchronized at both ends); the median block gives `step_ms`. The
forward and backward of L alone is timed the same way, and `optimizer_ms = step_ms − that`. A
level-2 submission's own extra passes (a second backward, a line search) count as optimizer time.
State bytes are `harness.memory.optimizer_state_bytes` after the timed steps. AdamW
(`submissions/adamw`) is always measured first: both ratios are to it, from the same run.

A submission that fails to load, build or step becomes a `failed` row: each submission is this
benchmark's trial boundary. Level-3 (AlgoPerf) submissions are `skipped`: their adapter steps
through a real workload's model and loss, which a synthetic parameter set does not have.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import statistics
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from harness.clock import Clock
from harness.contract import Hyperparameters, ParamGroups, WorkloadInfo
from harness.errors import UsageError
from harness.memory import optimizer_state_bytes
from harness.outputs import (
    BENCH_OPTIMIZERS_JSON,
    BENCH_OPTIMIZERS_MD,
    check_output,
    write_output_text,
)
from harness.provenance import collect_provenance, cpu_model
from harness.stepper import make_stepper
from harness.submission import (
    Level,
    Submission,
    load_submission,
    reference_dir,
    resolve_submission,
)
from workloads.nanogpt import GPT, GPT_CONFIGS, NanoGPT

__all__ = [
    "BASELINE",
    "SCALES",
    "BenchConfig",
    "BenchReport",
    "BenchRow",
    "RowStatus",
    "SyntheticLoss",
    "gpt_config",
    "check_output_path",
    "run_benchmark",
    "select_submissions",
    "sidecar_path",
    "write_report",
]

BASELINE = "adamw"
SCHEMA_VERSION = 1
# Changes to workloads.nanogpt's "full" GPT config; "full" itself changes nothing.
SCALES: dict[str, dict[str, int]] = {
    "full": {},
    "reduced": {"vocab_size": 12288, "num_layers": 4, "num_heads": 2, "model_dim": 256},
    "tiny": {
        "vocab_size": 256,
        "num_layers": 2,
        "num_heads": 2,
        "head_dim": 16,
        "model_dim": 32,
        "seq_len": 16,
    },
}
_LEVELS = {Level.FACTORY: "1", Level.FULL_CONTROL: "2", Level.ALGOPERF: "3"}
_MAX_STEPS = 1_000_000


class RowStatus(StrEnum):
    """What happened to one submission."""

    OK = "ok"
    FAILED = "failed"  # load, build or a step raised; `note` holds the error
    SKIPPED = "skipped"  # level 3 (AlgoPerf): its adapter needs a real workload and model


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """One benchmark run's settings.

    Attributes:
      device: torch device string (`cpu`, `cuda`).
      scale: a key of `SCALES`.
      steps: timed steps per repeat.
      repeats: timed blocks; the median is reported.
      warmup: untimed steps before the first block.
      seed: seeds the parameters and the synthetic loss's coefficients.
    """

    device: str
    scale: str
    steps: int = 20
    repeats: int = 5
    warmup: int = 5
    seed: int = 0


@dataclass(frozen=True, slots=True)
class BenchRow:
    """One submission's measurements (None where it failed or was skipped).

    Attributes:
      submission: the folder's name.
      level: contract level "1", "2" or "3" ("?" when it failed to load).
      status: ok, failed or skipped.
      step_ms: median milliseconds of a whole step (forward, backward, optimizer).
      optimizer_ms: median over repeats of step ms minus forward+backward ms.
      state_bytes: optimizer-state bytes after the timed steps.
      forward_backward_ms: median milliseconds of the loss's forward+backward alone, timed in
        alternation with this submission's steps.
      note: the error of a failed row, the reason of a skipped one.
      error_traceback: a failed row's traceback (JSON only).
    """

    submission: str
    level: str
    status: RowStatus
    step_ms: float | None = None
    optimizer_ms: float | None = None
    state_bytes: int | None = None
    forward_backward_ms: float | None = None
    note: str = ""
    error_traceback: str = ""


@dataclass(frozen=True, slots=True)
class BenchReport:
    """A run's rows (the baseline first) with what they were measured on."""

    config: BenchConfig
    torch_version: str
    device_name: str
    num_threads: int
    gpt_config: dict[str, int]
    num_params: int
    num_tensors: int
    rows: tuple[BenchRow, ...]
    provenance: dict[str, Any]

    def time_ratio(self, row: BenchRow) -> float | None:
        """`row.optimizer_ms` over the baseline's (None when either is missing or <= 0)."""
        return _ratio(row.optimizer_ms, self.rows[0].optimizer_ms)

    def memory_ratio(self, row: BenchRow) -> float | None:
        """`row.state_bytes` over the baseline's (None when either is missing or 0)."""
        return _ratio(row.state_bytes, self.rows[0].state_bytes)

    def header(self) -> str:
        """Device, torch version, parameter count and shape set, on two lines."""
        cfg, c = self.config, self.gpt_config
        shapes = (
            f"{cfg.scale} nanogpt GPT (vocab {c['vocab_size']}, {c['num_layers']} layers, "
            f"width {c['model_dim']} = {c['num_heads']} heads x {c['head_dim']}, untied head)"
        )
        return (
            f"device: {cfg.device} ({self.device_name}; torch threads: {self.num_threads}), "
            f"torch {self.torch_version}; parameters: {self.num_params:,} float32 in "
            f"{self.num_tensors} tensors, {shapes}\n"
            f"timing, per submission: {cfg.warmup} warm-up steps, then {cfg.repeats} repeats of "
            f"{cfg.steps} steps of the synthetic loss's forward+backward alone and {cfg.steps} "
            "whole steps, each block clocked with the device synchronized; medians over repeats"
        )

    def markdown(self) -> str:
        """The report as Markdown: title, header, table and notes."""
        lines = ["# optbench bench optimizers", ""]
        for line in self.header().splitlines():  # one paragraph each
            lines += [line, ""]
        lines += [
            "| submission | level | step ms | fwd+bwd ms | optimizer ms | time vs adamw "
            "| state MiB | state bytes/param | memory vs adamw | note |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
        ]
        lines += [self._markdown_row(row) for row in self.rows]
        lines += ["", _NOTES]
        return "\n".join(lines) + "\n"

    def _markdown_row(self, row: BenchRow) -> str:
        state = row.state_bytes
        cells = [
            row.submission,
            row.level,
            _fmt(row.step_ms, ".3f"),
            _fmt(row.forward_backward_ms, ".3f"),
            _fmt(row.optimizer_ms, ".3f"),
            _fmt(self.time_ratio(row), ".2f"),
            _fmt(None if state is None else state / 2**20, ".1f"),
            _fmt(None if state is None else state / self.num_params, ".2f"),
            _fmt(self.memory_ratio(row), ".2f"),
            (f"{row.status}: " if row.status is not RowStatus.OK else "") + _one_line(row.note),
        ]
        return "| " + " | ".join(cells) + " |"

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (schema `optbench.bench_optimizers`, versioned)."""
        rows = [
            {
                **dataclasses.asdict(row),
                "status": str(row.status),
                "time_ratio": self.time_ratio(row),
                "memory_ratio": self.memory_ratio(row),
            }
            for row in self.rows
        ]
        return {
            "schema": "optbench.bench_optimizers",
            "schema_version": SCHEMA_VERSION,
            "baseline": BASELINE,
            "config": dataclasses.asdict(self.config),
            "torch_version": self.torch_version,
            "device_name": self.device_name,
            "num_threads": self.num_threads,
            "gpt_config": self.gpt_config,
            "num_params": self.num_params,
            "num_tensors": self.num_tensors,
            "rows": rows,
            "provenance": self.provenance,
        }


_NOTES = (
    "optimizer ms = median of (step ms - fwd+bwd ms) over repeats; time vs adamw is its ratio "
    "(under the noise when near or below 0). "
    "State: `harness.memory.optimizer_state_bytes` after the timed steps. Hyperparameters: each "
    "search space's centre. A level-2 submission's own extra passes (Hessian-vector products, "
    "line searches) count as optimizer time."
)


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0 or not math.isfinite(value):
        return None
    return value / base


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split()).replace("|", "/")
    return line if len(line) <= limit else line[: limit - 3] + "..."


# -- selection ---------------------------------------------------------------------------------


def select_submissions(names: str | None) -> list[Path]:
    """The submission folders to measure, the baseline first, each once.

    Args:
      names: comma-separated names or folders; None means every reference submission.

    Raises:
      UsageError: a name is neither a folder nor a reference submission, or none is given.
    """
    if names is None:
        folders = sorted(p.parent for p in reference_dir().glob("*/submission.py"))
    else:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        if not wanted:
            raise UsageError("--submissions names no submission")
        folders = [resolve_submission(n) for n in wanted]  # UsageError on an unknown name
    baseline = resolve_submission(BASELINE)
    rest = [f.resolve() for f in folders if f.resolve() != baseline.resolve()]
    return [baseline, *dict.fromkeys(rest)]


# -- the problem -------------------------------------------------------------------------------


class SyntheticLoss:
    """L(θ) = Σ_p Σ_i (½·w_pi·θ_pi² + c_pi·θ_pi) over the parameters; see the module docstring.

    Args:
      params: the parameters θ_p.
      seed: seeds w (uniform in [0.5, 1.5)) and c (0.01 · standard normal).
    """

    def __init__(self, params: Sequence[torch.Tensor], seed: int) -> None:
        self._params = list(params)
        device = self._params[0].device
        gen = torch.Generator(device=device).manual_seed(seed)
        self.half_curvature = [  # ½·w, so the forward is one fused addcmul and a product
            0.25 + 0.5 * torch.rand(p.shape, generator=gen, device=device) for p in params
        ]
        self.linear = [0.01 * torch.randn(p.shape, generator=gen, device=device) for p in params]

    def __call__(self, batch: Any) -> torch.Tensor:
        """The loss with autograd on (`ctx.loss`); `batch` is ignored."""
        terms = [
            (p * torch.addcmul(c, half_w, p)).sum()
            for p, half_w, c in zip(self._params, self.half_curvature, self.linear, strict=True)
        ]
        return torch.stack(terms).sum()

    def forward_backward(self, batch: Any) -> torch.Tensor:
        """Forward and backward, accumulating into `.grad`; returns the detached loss."""
        loss = self(batch)
        loss.backward()
        return loss.detach()


@dataclass(frozen=True, slots=True)
class _Problem:
    model: torch.nn.Module
    groups: ParamGroups
    loss: SyntheticLoss
    batch: tuple[torch.Tensor, torch.Tensor]  # nanogpt-shaped (1 x 16 tokens), never read

    def zero_grads(self) -> None:
        for param in self.groups.params:
            param.grad = None

    def not_state(self) -> list[torch.Tensor]:
        """Tensors that are never optimizer state: parameters, buffers, the loss's coefficients."""
        return [
            *self.groups.params,
            *self.model.buffers(),
            *self.loss.half_curvature,
            *self.loss.linear,
        ]


def gpt_config(scale: str) -> Any:
    """The `workloads.nanogpt.GPTConfig` of a shape set (a key of `SCALES`)."""
    return dataclasses.replace(GPT_CONFIGS["full"], **SCALES[scale])


def _gpt(config: BenchConfig, device: str) -> torch.nn.Module:
    """The shape set's GPT, initialised from `config.seed`, built directly on `device`."""
    torch.manual_seed(config.seed)
    with torch.device(device):
        return GPT(gpt_config(config.scale))


def _build_problem(config: BenchConfig) -> _Problem:
    """A fresh, seeded GPT parameter set with its roles, and the synthetic loss over it."""
    model = _gpt(config, config.device)
    groups = NanoGPT("smoke", Path(".")).param_groups(model)  # roles only: no data is read
    loss = SyntheticLoss(groups.params, config.seed)
    tokens = torch.zeros(1, 16, dtype=torch.long, device=config.device)
    return _Problem(model, groups, loss, (tokens, tokens))


def _info(config: BenchConfig) -> WorkloadInfo:
    return WorkloadInfo(
        step_hint=_MAX_STEPS * 4 // 5,
        max_steps=_MAX_STEPS,
        max_time_s=math.inf,
        batch_size=1,
        tokens_per_step=16,
        scale="full" if config.scale == "full" else "smoke",
        device=config.device,
    )


# -- measuring ---------------------------------------------------------------------------------


def _timed_ms(step: Callable[[int], Any], first_index: int, config: BenchConfig) -> float:
    """Milliseconds per step of `config.steps` steps in one clocked block (device synced)."""
    clock = Clock.for_device(config.device)
    with clock.timed():
        for index in range(first_index, first_index + config.steps):
            step(index)
    return 1000.0 * clock.train_seconds() / config.steps


def _measure(loaded: Submission, config: BenchConfig) -> BenchRow:
    """One submission's row: build on fresh parameters, time the steps, count the state.

    Each repeat times a block of forward+backward alone, then a block of whole steps, so slow
    drift in machine load hits both sides of `optimizer_ms` (the median of the differences).
    """
    level = _LEVELS[loaded.level]
    if loaded.level is Level.ALGOPERF:
        note = "level 3 (AlgoPerf API) steps through a workload's model_fn; no synthetic loss"
        return BenchRow(loaded.name, level, RowStatus.SKIPPED, note=note)
    problem = _build_problem(config)
    hp = Hyperparameters(loaded.search_space.center())
    stepper = make_stepper(
        loaded, problem.groups, hp, _info(config), problem.loss, problem.loss.forward_backward
    )

    def forward_backward(index: int) -> None:
        problem.zero_grads()
        problem.loss.forward_backward(problem.batch)

    def step(index: int) -> None:
        stepper.step(problem.batch, index)

    for index in range(config.warmup):
        forward_backward(index)
        step(index)
    pairs = []
    for repeat in range(config.repeats):
        first = config.warmup + repeat * config.steps
        pairs.append((_timed_ms(forward_backward, first, config), _timed_ms(step, first, config)))
        problem.zero_grads()  # untimed: the steps start as they would without the extra block
    state_bytes = optimizer_state_bytes(stepper.optimizer_state, problem.not_state())
    return BenchRow(
        loaded.name,
        level,
        RowStatus.OK,
        step_ms=statistics.median(s for _, s in pairs),
        optimizer_ms=statistics.median(s - f for f, s in pairs),
        state_bytes=state_bytes,
        forward_backward_ms=statistics.median(f for f, _ in pairs),
    )


def _measure_or_fail(folder: Path, config: BenchConfig) -> BenchRow:
    """`_measure`, with any error turned into a failed row (this benchmark's trial boundary)."""
    level = "?"
    try:
        loaded = load_submission(folder)
        level = _LEVELS[loaded.level]
        return _measure(loaded, config)
    except Exception as exc:  # the submission's code: whatever it raises is its row's result
        return BenchRow(
            folder.name,
            level,
            RowStatus.FAILED,
            note=f"{type(exc).__name__}: {exc}",
            error_traceback=traceback.format_exc(),
        )
    finally:
        gc.collect()  # free this submission's parameters and state before the next one
        if torch.device(config.device).type == "cuda":
            torch.cuda.empty_cache()


def run_benchmark(
    config: BenchConfig,
    folders: Sequence[Path],
    command_line: str | None = None,
    on_start: Callable[[str], None] | None = None,
    on_done: Callable[[BenchRow], None] | None = None,
) -> BenchReport:
    """Measures every submission in `folders`, in order (the baseline first).

    Args:
      config: device, shape set, steps, repeats, warm-up.
      folders: submission folders from `select_submissions` (the baseline first).
      command_line: recorded in the report's provenance.
      on_start: called with each submission's name before it is measured.
      on_done: called with each row after it is measured.

    Returns:
      The report; its rows follow `folders`.
    """
    rows = []
    for folder in folders:
        if on_start:
            on_start(folder.name)
        rows.append(_measure_or_fail(folder, config))
        if on_done:
            on_done(rows[-1])
    params = list(_gpt(config, "meta").parameters())  # counts only: no memory
    device = torch.device(config.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return BenchReport(
        config=config,
        torch_version=torch.__version__,
        device_name=name,
        num_threads=torch.get_num_threads(),
        gpt_config=dataclasses.asdict(gpt_config(config.scale)),
        num_params=sum(p.numel() for p in params),
        num_tensors=len(params),
        rows=tuple(rows),
        provenance=collect_provenance(name, command_line),
    )


# -- writing -----------------------------------------------------------------------------------


def sidecar_path(path: Path) -> Path:
    """Where the JSON of a report written to `path` goes: `path` with suffix `.json` (or `.json`
    appended to a `.json` path)."""
    path = Path(path)
    if path.suffix == ".json":
        return path.with_name(path.name + ".json")
    return path.with_suffix(".json")


def check_output_path(path: Path) -> None:
    """Refuses `--output path` before anything is measured: its folder must be one this process
    can write, and the Markdown and its JSON may replace only a bench optimizers report optbench
    wrote (`harness.outputs`).

    Raises:
      UsageError: one line naming `--output` and what is in the way.
    """
    check_output(path, BENCH_OPTIMIZERS_MD, "--output")
    check_output(sidecar_path(path), BENCH_OPTIMIZERS_JSON, "--output")


def write_report(report: BenchReport, path: Path) -> Path:
    """Writes the Markdown to `path` and the JSON beside it, each atomically (temp + rename).

    Returns:
      The JSON sidecar's path (`sidecar_path`).

    Raises:
      UsageError: either file may not be replaced (`check_output_path`).
    """
    path = Path(path)
    sidecar = sidecar_path(path)
    check_output_path(path)
    write_output_text(path, report.markdown(), BENCH_OPTIMIZERS_MD, "--output")
    write_output_text(
        sidecar, json.dumps(report.to_json(), indent=2) + "\n", BENCH_OPTIMIZERS_JSON, "--output"
    )
    return sidecar
