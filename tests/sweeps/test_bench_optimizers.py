"""`optbench bench optimizers` on the tiny GPT parameter set: ratios, exact state bytes,
failures."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from sweeps.bench.optimizers import BenchConfig, RowStatus, run_benchmark, select_submissions
from sweeps.cli import main

NAMES = ("adamw", "sgd-nesterov", "muon", "adamw-optax")
# Enough steps and repeats that forward+backward noise stays below the optimizer time on a busy
# machine (with 2 x 1 a subtracted time once came out negative).
TINY = ("--device", "cpu", "--scale", "tiny", "--steps", "6", "--repeats", "3", "--warmup", "2")


@contextlib.contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """The CLI sets torch's thread count on CPU; later tests in this process keep theirs."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One CLI run over the four references (adamw not named: it is added as the baseline)."""
    out = tmp_path_factory.mktemp("bench") / "bench.md"
    stdout = io.StringIO()
    argv = [
        "bench",
        "optimizers",
        *TINY,
        "--submissions",
        ",".join(NAMES[1:]),
        "--output",
        str(out),
    ]
    with _torch_threads_kept(), contextlib.redirect_stdout(stdout):
        status = main(argv)
    report = json.loads(out.with_suffix(".json").read_text())
    return {
        "status": status,
        "stdout": stdout.getvalue(),
        "out": out,
        "report": report,
        "rows": {row["submission"]: row for row in report["rows"]},
    }


def test_cli_measures_the_baseline_first_and_every_name(cli_run: dict[str, Any]) -> None:
    assert cli_run["status"] == 0
    assert [row["submission"] for row in cli_run["report"]["rows"]] == list(NAMES)
    assert all(row["status"] == "ok" for row in cli_run["report"]["rows"]), cli_run["rows"]


def test_adamw_ratios_are_exactly_one(cli_run: dict[str, Any]) -> None:
    adamw = cli_run["rows"]["adamw"]
    assert adamw["time_ratio"] == 1.0
    assert adamw["memory_ratio"] == 1.0


def test_adamw_state_is_two_fp32_moments_and_a_step_per_tensor(cli_run: dict[str, Any]) -> None:
    report = cli_run["report"]
    expected = 2 * 4 * report["num_params"] + 4 * report["num_tensors"]
    assert cli_run["rows"]["adamw"]["state_bytes"] == expected


def test_sgd_nesterov_keeps_about_half_of_adamws_state(cli_run: dict[str, Any]) -> None:
    assert cli_run["rows"]["sgd-nesterov"]["memory_ratio"] == pytest.approx(0.5, rel=0.01)


def test_every_row_has_positive_times(cli_run: dict[str, Any]) -> None:
    for row in cli_run["report"]["rows"]:
        assert row["step_ms"] > 0 and row["forward_backward_ms"] > 0, row
        assert row["optimizer_ms"] is not None and row["time_ratio"] is not None, row


def test_output_and_stdout_hold_the_table(cli_run: dict[str, Any]) -> None:
    written = cli_run["out"].read_text()
    assert written == cli_run["stdout"].rstrip("\n") + "\n"
    report = cli_run["report"]
    assert f"torch {torch.__version__}" in written
    assert (
        f"parameters: {report['num_params']:,} float32" in written and "tiny nanogpt GPT" in written
    )
    assert "| submission | level | step ms |" in written
    for name in NAMES:
        assert f"\n| {name} | 1 |" in written
    assert report["schema"] == "optbench.bench_optimizers" and report["schema_version"] == 1
    assert not list(cli_run["out"].parent.glob(".*.tmp"))  # atomic writes leave no temp files


def test_unknown_submission_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.md"
    argv = ["bench", "optimizers", *TINY, "--submissions", "muon,no-such-opt", "--output", str(out)]
    with _torch_threads_kept():
        status = main(argv)
    err = capsys.readouterr().err
    assert status == 2
    assert "optbench: error: unknown submission 'no-such-opt'" in err and "adamw" in err
    assert not out.exists()


_FAILING = "def optimizer(params, hp, info):\n    raise RuntimeError('no optimizer today')\n"
# Level 2: a diagonal-Newton step from a Hessian-vector product (needs ctx.loss + create_graph).
_HVP = """import torch
class Submission:
    def __init__(self, params, hp, info):
        self.params, self.lr = list(params.params), hp["lr"]
    def update(self, batch, step, ctx):
        loss = ctx.loss(batch)
        grads = torch.autograd.grad(loss, self.params, create_graph=True)
        probes = [torch.ones_like(p) for p in self.params]
        hvps = torch.autograd.grad(grads, self.params, probes)
        with torch.no_grad():
            for p, g, h in zip(self.params, grads, hvps):
                p.sub_(self.lr * ctx.lr_multiplier(step) * g / h.clamp(min=1e-3))
        return loss.detach()
"""
_ALGOPERF = "".join(
    f"def {name}(*args):\n    pass\n"
    for name in ("get_batch_size", "init_optimizer_state", "update_params", "data_selection")
)


def _submission(root: Path, name: str, source: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "submission.py").write_text(source)
    (folder / "search_space.json").write_text(json.dumps({"lr": {"feasible_points": [0.5]}}))
    return folder


def test_failures_are_rows_and_level_2_runs(tmp_path: Path) -> None:
    folders = [
        _submission(tmp_path, n, s)
        for n, s in (("broken", _FAILING), ("hvp-newton", _HVP), ("algoperf-style", _ALGOPERF))
    ]
    config = BenchConfig(device="cpu", scale="tiny", steps=2, repeats=1, warmup=1)
    report = run_benchmark(config, select_submissions(",".join(str(f) for f in folders)))
    rows = {row.submission: row for row in report.rows}
    assert list(rows) == ["adamw", "broken", "hvp-newton", "algoperf-style"]
    assert rows["broken"].status is RowStatus.FAILED
    assert "RuntimeError: no optimizer today" in rows["broken"].note
    assert rows["hvp-newton"].status is RowStatus.OK and rows["hvp-newton"].level == "2"
    assert rows["hvp-newton"].state_bytes == 0  # it keeps only the parameters: nothing counted
    assert rows["algoperf-style"].status is RowStatus.SKIPPED
    table = report.markdown()
    assert "| broken | 1 | - |" in table and "failed: RuntimeError: no optimizer today" in table
