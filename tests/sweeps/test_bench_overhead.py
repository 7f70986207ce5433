"""The overhead benchmark's AdamW point comes from the adamw search space; its report round-trips.

The command itself runs on both smoke workloads in `tests/test_readme_commands.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.errors import ContractError
from harness.submission import load_submission, reference_dir
from sweeps.bench.overhead import POINT_OVERRIDES, OverheadResult, overhead_point, write_report
from sweeps.cli import main


def test_the_point_is_the_adamw_space_centre_with_the_overrides() -> None:
    space = load_submission("adamw").search_space
    point = overhead_point()
    assert point == {**space.center(), **POINT_OVERRIDES}
    assert sorted(point) == sorted(d.name for d in space.dims)  # nothing the space lacks (beta2)
    space.validate_point(point)


def test_a_space_that_drops_an_override_is_refused_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "adamw"
    shutil.copytree(reference_dir() / "adamw", folder)
    space = json.loads((folder / "search_space.json").read_text())
    space["lr"] = {"min": 1e-4, "max": 1e-3, "scaling": "log"}  # 3e-3 is outside
    (folder / "search_space.json").write_text(json.dumps(space))
    with pytest.raises(
        ContractError, match=r"search_space.json: lr=0.003 is outside \[0.0001, 0.001\]"
    ):
        overhead_point(load_submission(folder))


def _result() -> OverheadResult:
    return OverheadResult(
        workload="digits",
        steps=10,
        seed=0,
        hparams_json=json.dumps(overhead_point()),
        optimizer_defaults_json='{"beta2": 0.999, "eps": 1e-08}',
        loop_s=((1.0, 1.5), (2.0, 2.5), (4.0, 4.0)),
        runner_s=((1.1, 3.0), (2.2, 3.0), (4.4, 3.5)),
        provenance={
            "git_commit": "0123456789abcdef",
            "git_dirty": True,
            "cpu_model": "CPU X",
            "torch_version": "2.13.0",
        },
    )


def test_the_report_holds_the_medians_and_ratios(tmp_path: Path) -> None:
    result = _result()
    assert (result.loop_train_s, result.runner_train_s, result.repeats) == (2.0, 2.2, 3)
    assert result.clock_ratio == pytest.approx(1.1) and result.wall_ratio == pytest.approx(1.2)
    sidecar = write_report(result, tmp_path / "out" / "digits.md")
    assert sidecar == tmp_path / "out" / "digits.json"
    markdown = (tmp_path / "out" / "digits.md").read_text()
    assert markdown == result.markdown()
    assert (
        "- clock ratio (runner/loop): 1.100" in markdown
        and "commit 0123456789ab (dirty)" in markdown
    )
    data = json.loads(sidecar.read_text())
    assert data["schema"] == "optbench.bench_overhead" and data["clock_ratio"] == pytest.approx(1.1)
    assert data["runner_s"][2] == [4.4, 3.5] and "beta2" not in data["hparams"]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("overhead.json", "give a .md file"),
        ("{file}/overhead.md", "is a file, not a folder"),
    ],
)
def test_a_bad_output_path_is_refused_before_measuring(
    output: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "overhead", "--output", output.format(file=tmp_path / "file")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
