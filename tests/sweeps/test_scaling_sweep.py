"""`optbench scaling`: every submission on every rung of a workload's ladder, then the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.results import ResultsStore
from sweeps.cli import main
from workloads import NanoGPT


def test_refusals_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = str(tmp_path / "results")
    assert main(["scaling", "digits", "--submissions", "adamw", "--results", results]) == 2
    assert "'digits' has no ladder at scale 'smoke'" in capsys.readouterr().err
    assert (
        main(
            [
                "scaling",
                "nanogpt",
                "--submissions",
                "adamw",
                "--reference",
                "muon",
                "--results",
                results,
            ]
        )
        == 2
    )
    assert "--reference 'muon' is not one of --submissions (adamw)" in capsys.readouterr().err
    assert not Path(results).exists()


@pytest.mark.slow
def test_every_submission_runs_on_every_rung_and_reruns_skip(
    tmp_path: Path, data_dir: Path
) -> None:
    results = tmp_path / "results"
    argv = (
        "scaling nanogpt --scale smoke --submissions adamw,muon --trials 1 --studies 1 "
        "--max-steps 20 --cpus 2 --quiet --reference adamw"
    ).split()
    argv += ["--results", str(results), "--data-dir", str(data_dir)]
    assert main(argv) == 0
    trials = ResultsStore(results).read_trials()
    rungs = NanoGPT.ladders["smoke"]
    assert sorted(zip(trials["submission"], trials["scale"], strict=True)) == sorted(
        (s, r) for s in ("adamw", "muon") for r in rungs
    )
    assert set(trials["ruleset"]) == {"external"} and trials["memory_cap_bytes"].isna().all()
    by_rung = trials[trials["submission"] == "adamw"].set_index("scale")["num_params"]
    assert list(by_rung.loc[list(rungs)]) == sorted(by_rung)  # the ladder's sizes, in order
    page = results / "report-scaling" / "report.html"
    assert page.is_file() and "smoke-xs" in page.read_text()
    page.unlink()
    assert (
        main(argv) == 0
    )  # resumable: every trial is stored, none runs again; the report is rebuilt
    assert len(ResultsStore(results).read_trials()) == 8 and page.is_file()
