"""Bad input: one clear line naming what and where, exit status 2, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import ResultsStore


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    err = capsys.readouterr().err.strip()
    return status, err


def _assert_one_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("optbench: error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _nothing_in(folder: Path) -> bool:
    return not folder.exists() or not any(folder.rglob("*"))


def _submission(root: Path, source: str, space: str) -> Path:
    folder = root / "my-opt"
    folder.mkdir()
    (folder / "submission.py").write_text(source)
    (folder / "search_space.json").write_text(space)
    return folder


GOOD_SOURCE = "import torch\ndef optimizer(params, hp, info):\n    return torch.optim.SGD(params.params, lr=hp['lr'])\n"
GOOD_SPACE = json.dumps({"lr": {"min": 0.01, "max": 0.1, "scaling": "log"}})


def test_unknown_workload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    status, err = _run(capsys, "run", "adamw", "--workload", "imagenet", "--results", str(results))
    assert status == 2
    _assert_one_line(err, "unknown workload 'imagenet'", "known: cifar10-94, diffusion, digits, nanogpt, resnet18-cifar10, vit-cifar10")
    assert _nothing_in(results)


def test_unknown_submission(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    status, err = _run(capsys, "sweep", "no-such-opt", "--workloads", "digits", "--results", str(results))
    assert status == 2
    _assert_one_line(err, "unknown submission 'no-such-opt'", "adamw")
    assert _nothing_in(results)


def test_malformed_search_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _submission(tmp_path, GOOD_SOURCE, '{"lr": {"min": 0.01, "max": }')
    results = tmp_path / "results"
    status, err = _run(capsys, "submit", str(folder), "--results", str(results))
    assert status == 2
    _assert_one_line(err, str(folder / "search_space.json"), "not valid JSON", "line 1")
    assert _nothing_in(results)


def test_search_space_with_bad_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = json.dumps({"lr": {"min": 0.1, "max": 0.01, "scaling": "log"}})
    folder = _submission(tmp_path, GOOD_SOURCE, space)
    status, err = _run(capsys, "validate", str(folder))
    assert status == 2
    _assert_one_line(err, "search_space.json", "'lr'", "min 0.1 is greater than max 0.01")


def test_submission_missing_its_function(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _submission(tmp_path, "import torch\n\ndef make_optimizer(params):\n    pass\n", GOOD_SPACE)
    results = tmp_path / "results"
    status, err = _run(capsys, "sweep", str(folder), "--workloads", "digits", "--results", str(results))
    assert status == 2
    _assert_one_line(err, str(folder / "submission.py"), "defines none of optimizer(params, hp, info)")
    assert _nothing_in(results)


def test_hyperparameter_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    status, err = _run(capsys, "run", "adamw", "--workload", "digits", "--hp", "lr=5",
                       "--results", str(results))  # fmt: skip
    assert status == 2
    _assert_one_line(err, "adamw/search_space.json", "lr=5 is outside [0.0001, 0.01]")
    assert _nothing_in(results)


def test_unknown_hyperparameter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _run(capsys, "run", "adamw", "--workload", "digits", "--hp", "momentum=0.9",
                       "--results", str(tmp_path / "r"))  # fmt: skip
    assert status == 2
    _assert_one_line(err, "['momentum'] not in the search space")


def test_unreadable_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    (results / "trials").mkdir(parents=True)
    bad = results / "trials" / "0123abcd.parquet"
    bad.write_bytes(b"this is not parquet")
    before = sorted(p.name for p in results.rglob("*"))
    for command in ("score", "leaderboard"):
        status, err = _run(capsys, command, "--results", str(results))
        assert status == 2
        _assert_one_line(err, str(bad), "not a readable parquet file")
    assert sorted(p.name for p in results.rglob("*")) == before  # no leaderboard half-written


def test_missing_results_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _run(capsys, "score", "--results", str(tmp_path / "nowhere"))
    assert status == 2
    _assert_one_line(err, "nowhere", "does not exist")


def test_every_command_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("list", "validate", "run", "sweep", "submit", "score", "leaderboard",
                    "import-algoperf", "sysinfo"):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "example:\n  optbench " + command in capsys.readouterr().out


def test_bad_option_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "adamw", "--trials", "0"])
    assert exit_info.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_store_is_untouched_by_failed_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    status, _ = _run(capsys, "sweep", "adamw", "no-such-opt", "--results", str(results))
    assert status == 2
    assert ResultsStore(results).completed_trial_ids() == set()
