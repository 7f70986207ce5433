"""The reports recover what the synthetic store was built to hold, and refuse bad input cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import UsageError
from harness.outputs import MARK
from reports.frames import band
from reports.pareto import pareto_mask
from reports.report import build_report
from sweeps.cli import main
from tests.reports import synthetic
from tests.reports.synthetic import write_synthetic_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    write_synthetic_store(root)
    return root


@pytest.fixture(scope="module")
def reports(store_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    options = {
        "fixed-model": {"scale": "smoke"},
        "fixed-resource": {},
        "scaling": {"workload": "nanogpt", "scale": "smoke"},
    }
    return {
        kind: build_report(kind, store_root, out / kind, n_boot=300, **opts).html.parent
        for kind, opts in options.items()
    }


def _table(report: Path, ident: str) -> pd.DataFrame:
    return pd.read_csv(report / "tables" / f"{ident}.csv", index_col=0)


def test_claims_rank_the_optimizers_as_built(reports: dict[str, Path]) -> None:
    claims = _table(reports["fixed-model"], "nanogpt-smoke-claims")
    speed = claims["speedup (steps)"]
    assert speed["adamw"] == 1.0
    assert speed["muon"] > 1.15  # built 1.4x faster in steps
    assert speed["sgd-nesterov"] < 0.9  # built 0.7x
    low, high = (float(v) for v in claims.loc["muon", "steps 95% CI"].strip("[]").split(","))
    assert low <= speed["muon"] <= high
    assert (
        claims["data equivalence D_eff/D"]["muon"]
        > 1.0
        > claims["data equivalence D_eff/D"]["sgd-nesterov"]
    )
    assert (claims["studies"] == 3).all() and (claims["trials"] == 18).all()


def test_stability_counts_the_divergences_and_faults(reports: dict[str, Path]) -> None:
    for workload in ("nanogpt", "digits"):
        table = _table(reports["fixed-model"], f"{workload}-smoke-stability")
        assert table.loc["lion", "diverged"] == 1
        assert table.loc["adamw", "diverged"] == 0
    digits = _table(reports["fixed-model"], "digits-smoke-stability")
    assert digits.loc["muon", "faults"] == 1 and digits.loc["adamw", "faults"] == 0


def test_memory_breakdown_shows_the_optimizer_state(reports: dict[str, Path]) -> None:
    memory = _table(reports["fixed-model"], "nanogpt-smoke-memory")
    for name, ratio in synthetic.STATE_PER_PARAM.items():
        assert memory.loc[name, "optimizer state"] == pytest.approx(
            ratio * memory.loc[name, "params"]
        )
    parts = ["params", "grads", "optimizer state", "activations + temporaries"]
    assert memory[parts].sum(axis=1).to_numpy() == pytest.approx(memory["peak"].to_numpy())


def test_protocol_and_figures_are_in_the_page(reports: dict[str, Path]) -> None:
    page = (reports["fixed-model"] / "report.html").read_text()
    for words in (
        "tuning protocol",
        "Selection: per study",
        "found after k trials",
        "vs learning rate",
        "vs weight decay",
        "within a training-time budget",
        "memory per submission",
        "vs tokens",
        "vs training seconds",
        "time to target (s) vs peak memory",
    ):
        assert words in page, words
    figures = sorted(p.name for p in (reports["fixed-model"] / "figures").iterdir())
    assert page.count("<img") == len(figures) == 18  # 9 per workload
    markdown = (reports["fixed-model"] / "report.md").read_text()
    assert all(f"figures/{name}" in markdown for name in figures)


def test_fixed_resource_finds_the_largest_model_each_fits(reports: dict[str, Path]) -> None:
    table = _table(reports["fixed-resource"], "nanogpt-fixed-resource")
    for name, rung in synthetic.LARGEST_FIT.items():
        assert table.loc[name, "its rung"] == rung
    assert table.loc["adamw", "over budget"] > 0 and table.loc["muon", "over budget"] == 0
    best = table["best val_loss within budget"]
    assert best["adamw"] > best["muon"]  # muon fits the larger model and learns faster


def test_scaling_recovers_the_lr_exponent_and_the_speedup_trend(reports: dict[str, Path]) -> None:
    summary = _table(reports["scaling"], "nanogpt-smoke-scaling")
    alphas = summary["lr* exponent alpha"]
    assert alphas.to_numpy() == pytest.approx(synthetic.BEST_LR_EXPONENT, abs=0.1)
    trend = summary["advantage trend (d log s / d log N)"]
    assert trend["muon"] > 0.05  # built to grow as N^0.15
    assert abs(trend["sgd-nesterov"]) < 0.1  # built flat


def test_pareto_mask_keeps_exactly_the_undominated_points() -> None:
    x = np.array([1.0, 2.0, 3.0, 2.0, np.inf])
    y = np.array([5.0, 3.0, 1.0, 4.0, 0.0])
    assert pareto_mask(x, y).tolist() == [True, True, True, False, False]
    # higher x is better: the point at x=3 dominates (2, 4) and (2, 3) but not (1, 5)? no: 3 > 1
    assert pareto_mask(x, y, x_lower=False).tolist() == [False, False, True, False, False]


def test_band_holds_a_finished_curve_at_its_last_value() -> None:
    short = pd.DataFrame({"t": [1.0, 2.0], "value": [3.0, 2.0]})
    long = pd.DataFrame({"t": [1.0, 2.0, 4.0], "value": [3.0, 2.5, 2.4]})
    frame = band([short, long], "t", points=4)
    assert frame["n"].tolist() == [2, 2, 2, 2]
    assert frame["median"].iloc[-1] == pytest.approx((2.0 + 2.4) / 2)


def test_report_replaces_an_old_report_whole_and_a_failure_keeps_it(
    store_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"  # an older report, with a figure the new one does not draw
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "stale.png").write_bytes(b"PNG")
    (out / MARK).write_text(json.dumps({"kind": "report", "files": ["figures/stale.png"]}))
    build_report("pareto", store_root, out, workload="digits", n_boot=50)
    assert not (out / "figures" / "stale.png").exists() and (out / "report.html").is_file()
    assert "report.md" in json.loads((out / MARK).read_text())["files"]
    before = sorted(os.listdir(out))
    with pytest.raises(UsageError, match="reference 'nobody' has no trials"):
        build_report("pareto", store_root, out, workload="digits", reference="nobody")
    assert sorted(os.listdir(out)) == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporaries left beside it


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def test_a_folder_of_other_files_is_never_replaced(store_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "stale.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"notes: holds 1 file\(s\) optbench did not write"):
        build_report("pareto", store_root, out, workload="digits", n_boot=50)
    assert (out / "stale.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["notes"]


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("{store}", "is the results store the output is built from"),
        ("{store}/trials", "inside the results store's own trials/ folder"),
        ("{store}/..", "holds the results store"),
        ("{tmp}/afile", "afile: is a file, not a folder"),
    ],
)
def test_report_out_over_the_store_or_a_file_exits_2_and_deletes_nothing(
    store_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str, message: str
) -> None:
    (tmp_path / "afile").write_text("mine")
    before = _snapshot(store_root)
    argv = [
        "report",
        "pareto",
        "--results",
        str(store_root),
        "--workload",
        "digits",
        "--out",
        out.format(store=store_root, tmp=tmp_path),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(store_root) == before
    assert sorted(os.listdir(tmp_path)) == ["afile"] and (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "fixed-model", "--reference", "nobody"], "reference 'nobody' has no trials"),
        (["report", "scaling"], "needs --workload and --scale"),
        (["report", "pareto", "--workload", "imagenet"], "no trials of workload 'imagenet'"),
    ],
)
def test_bad_report_requests_exit_2_naming_the_problem(
    store_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    assert main([*argv, "--results", str(store_root), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_empty_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "fixed-model", "--results", str(tmp_path / "none")]) == 2
    assert "no trials" in capsys.readouterr().err


def test_report_modules_load_no_framework() -> None:
    code = (
        "import reports.report, reports.commands, sys; "
        "assert 'torch' not in sys.modules and 'jax' not in sys.modules"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_a_tuned_value_at_the_end_of_the_range_is_flagged() -> None:
    from reports.frames import edge_of_range

    tried = pd.Series([1e-3, 3e-3, 1e-2, np.nan])
    assert edge_of_range(tried, 1e-2) == "largest" and edge_of_range(tried, 1e-3) == "smallest"
    assert edge_of_range(tried, 3e-3) == "" and edge_of_range(tried[:2], 3e-3) == ""


@pytest.mark.parametrize(
    ("picks", "expected"),
    [
        ((0, 1), ""),  # one study of two at its smallest lr: a flat optimum does that by chance
        ((3, 3), "largest"),  # both at their largest: the optimum lies above the lrs tried
        ((0, 0), "smallest"),
        ((0, 3), ""),
        ((0, 1, 0), "smallest"),  # two of three
        ((0, 1, 2), ""),  # one of three
    ],
)
def test_the_under_tuned_edge_needs_most_studies(picks: tuple[int, ...], expected: str) -> None:
    from reports.frames import edge_in_most_studies

    lrs = [1e-3, 3e-3, 1e-2, 3e-2]
    trials = pd.DataFrame(
        [
            {"study": k, "trial_index": i, "hparams_json": json.dumps({"lr": lr})}
            for k in range(len(picks))
            for i, lr in enumerate(lrs)
        ]
    )
    selected = pd.concat(
        [trials[(trials.study == k) & (trials.trial_index == i)] for k, i in enumerate(picks)]
    )
    assert edge_in_most_studies(trials, selected) == expected


def test_scaling_flags_no_edge_when_the_grid_surrounds_the_optimum(
    reports: dict[str, Path],
) -> None:
    page = (reports["scaling"] / "report.md").read_text()
    assert "under-tuned" not in page  # the synthetic grid is centred on each rung's lr*
