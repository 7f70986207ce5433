"""Bad input: one clear line naming what and where, exit status 2, and nothing written.

`BAD_INPUTS` holds at least one bad input for every subcommand (`test_the_table_covers_every_
subcommand` keeps it so); each is run in this process through `sweeps.cli.main` and must end with
exit status 2, exactly one line on stderr (argparse's usage block included), nothing on stdout, no
trial started, and the test's folder (results, data and output folders) exactly as it was.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.recorder import failed_outcome
from harness.results import ResultsStore
from harness.trial import TrialSpec
from sweeps.cli import build_parser, main
from workloads import get_workload

SPACE = json.dumps({"lr": {"min": 0.01, "max": 0.1, "scaling": "log"}})
GOOD_SOURCE = (
    "import torch\ndef optimizer(params, hp, info):\n"
    "    return torch.optim.SGD(params.params, lr=hp['lr'])\n"
)


def _factory(body: str) -> str:
    return f"import torch\n\ndef optimizer(params, hp, info):\n    {body}\n"


RETURNS_NONE = _factory("return None")
RETURNS_DICT = _factory("return {'params': params.params, 'lr': hp['lr']}")
OMITS_PARAMS = _factory("return torch.optim.SGD(params.with_roles('matrix', 'conv'), lr=hp['lr'])")
IN_TWO = _factory(
    "return [torch.optim.SGD(params.params, lr=hp['lr']),\n"
    "            torch.optim.SGD(params.with_roles('bias'), lr=hp['lr'])]"
)
READS_UNDECLARED_HP = _factory(
    "return torch.optim.SGD(params.params, lr=hp['lr'], momentum=hp['momentum'])"
)


def _submission(source: str | bytes, space: str | bytes = SPACE) -> dict[str, str | bytes]:
    return {"sub/submission.py": source, "sub/search_space.json": space}


@dataclass(frozen=True)
class Bad:
    """One bad command line: `{tmp}` is the test's folder, `{data}` the session's data folder;
    `files` are written under `{tmp}` first (a key ending in `/` is a folder)."""

    argv: tuple[str, ...]
    fragments: tuple[str, ...]
    files: Mapping[str, str | bytes] = field(default_factory=dict)


RUN = ("--workload", "digits", "--data-dir", "{data}", "--results", "{tmp}/results")
SWEEP = (
    "--workloads",
    "digits",
    "--trials",
    "1",
    "--studies",
    "1",
    "--data-dir",
    "{data}",
    "--results",
    "{tmp}/results",
)
NO_NETWORK = ("--mirror", "http://127.0.0.1:9")  # were a check to miss, no download leaves loopback

BAD_INPUTS: dict[str, Bad] = {
    "list-extra-argument": Bad(
        ("list", "extra"), ("optbench: error:", "unrecognized arguments: extra")
    ),
    "validate-sys-exit-at-import": Bad(
        ("validate", "{tmp}/sub", "--data-dir", "{data}"),
        ("sub/submission.py", "raised SystemExit(0) at import"),
        _submission("import sys\nsys.exit(0)\n"),
    ),
    "validate-keyboard-interrupt-at-import": Bad(
        ("validate", "{tmp}/sub"),
        ("sub/submission.py", "raised KeyboardInterrupt() at import"),
        _submission("raise KeyboardInterrupt\n"),
    ),
    "validate-factory-returns-none": Bad(
        ("validate", "{tmp}/sub", "--data-dir", "{data}"),
        ("sub/submission.py", "optimizer() returned None", "the parameters of digits@smoke"),
        _submission(RETURNS_NONE),
    ),
    "validate-factory-omits-parameters": Bad(
        ("validate", "{tmp}/sub", "--data-dir", "{data}"),
        ("a norm parameter of shape (16,) is in 0 optimizer groups", "exactly one"),
        _submission(OMITS_PARAMS),
    ),
    "validate-search-space-not-utf8": Bad(
        ("validate", "{tmp}/sub"),
        ("sub/search_space.json", "not UTF-8 text (byte 0"),
        _submission(GOOD_SOURCE, b"\xff\xfe{}"),
    ),
    "validate-search-space-is-a-folder": Bad(
        ("validate", "{tmp}/sub"),
        ("sub/search_space.json", "is a folder"),
        {"sub/submission.py": GOOD_SOURCE, "sub/search_space.json/": ""},
    ),
    "validate-search-space-bad-range": Bad(
        ("validate", "{tmp}/sub"),
        ("search_space.json", "'lr'", "min 0.1 is greater than max 0.01"),
        _submission(GOOD_SOURCE, json.dumps({"lr": {"min": 0.1, "max": 0.01, "scaling": "log"}})),
    ),
    "run-factory-returns-none": Bad(
        ("run", "{tmp}/sub", *RUN),
        ("sub/submission.py", "optimizer() returned None"),
        _submission(RETURNS_NONE),
    ),
    "run-factory-returns-dict": Bad(
        ("run", "{tmp}/sub", *RUN), ("optimizer() returned dict",), _submission(RETURNS_DICT)
    ),
    "run-factory-omits-parameters": Bad(
        ("run", "{tmp}/sub", *RUN),
        ("a norm parameter of shape (16,) is in 0 optimizer groups",),
        _submission(OMITS_PARAMS),
    ),
    "run-parameter-in-two-optimizers": Bad(
        ("run", "{tmp}/sub", *RUN),
        ("a bias parameter of shape (16,) is in 2 optimizer groups",),
        _submission(IN_TWO),
    ),
    "run-factory-raises": Bad(
        ("run", "{tmp}/sub", *RUN),
        ("optimizer(params, hp, info) raised KeyError: 'momentum'",),
        _submission(READS_UNDECLARED_HP),
    ),
    "run-negative-seed": Bad(
        ("run", "adamw", *RUN, "--seed", "-1"),
        ("optbench run: error: argument --seed: must be an integer >= 0, got '-1'",),
    ),
    "run-full-scale-data-not-prepared": Bad(
        (
            "run",
            "adamw",
            "--workload",
            "cifar10-94",
            "--scale",
            "full",
            "--data-dir",
            "{tmp}/nodata",
            "--results",
            "{tmp}/results",
        ),
        ("CIFAR-10 is not prepared in", "nodata", "`optbench data prepare cifar10 --dir "),
    ),
    "run-hp-given-twice": Bad(
        ("run", "adamw", *RUN, "--hp", "lr=0.001", "--hp", "lr=0.002"),
        ("--hp lr is given twice", "lr=0.001 and lr=0.002"),
    ),
    "run-device-gpu": Bad(
        ("run", "adamw", *RUN, "--device", "gpu"),
        ("argument --device: must be cpu, cuda or cuda:N, got 'gpu'",),
    ),
    "run-device-cuda-without-cuda": Bad(
        ("run", "adamw", *RUN, "--device", "cuda"), ("--device cuda: no CUDA device is available",)
    ),
    "run-threads-zero": Bad(
        ("run", "adamw", *RUN, "--threads", "0"),
        ("optbench run: error: argument --threads: must be an integer >= 1, got '0'",),
    ),
    "run-threads-not-a-number": Bad(
        ("run", "adamw", *RUN, "--threads", "two"),
        ("argument --threads: must be an integer >= 1, got 'two'",),
    ),
    "run-unknown-workload": Bad(
        ("run", "adamw", "--workload", "imagenet", "--results", "{tmp}/results"),
        (
            "unknown workload 'imagenet'",
            "known: cifar10-94, diffusion, digits, nanogpt, resnet18-cifar10, vit-cifar10",
        ),
    ),
    "run-hp-out-of-range": Bad(
        ("run", "adamw", *RUN, "--hp", "lr=5"),
        ("adamw/search_space.json", "lr=5 is outside [0.001, 0.1]"),
    ),
    "run-unknown-hp": Bad(
        ("run", "adamw", *RUN, "--hp", "momentum=0.9"), ("['momentum'] not in the search space",)
    ),
    "sweep-unknown-submission": Bad(
        ("sweep", "no-such-opt", *SWEEP), ("unknown submission 'no-such-opt'", "adamw")
    ),
    "sweep-missing-function": Bad(
        ("sweep", "{tmp}/sub", *SWEEP),
        ("sub/submission.py", "defines none of optimizer(params, hp, info)"),
        _submission("import torch\n\ndef make_optimizer(params):\n    pass\n"),
    ),
    "sweep-factory-returns-none": Bad(
        ("sweep", "adamw", "{tmp}/sub", *SWEEP),
        ("optimizer() returned None", "the parameters of digits@smoke"),
        _submission(RETURNS_NONE),
    ),
    "sweep-negative-seed": Bad(
        ("sweep", "adamw", *SWEEP, "--seed", "-3"),
        ("argument --seed: must be an integer >= 0, got '-3'",),
    ),
    "sweep-trials-zero": Bad(
        ("sweep", "adamw", "--trials", "0"),
        ("argument --trials: must be an integer >= 1, got '0'",),
    ),
    "sweep-budget-not-a-number": Bad(
        ("sweep", "adamw", *SWEEP, "--ruleset", "compute", "--budget-s", "soon"),
        ("argument --budget-s: must be a number > 0, got 'soon'",),
    ),
    "scaling-workload-without-ladder": Bad(
        (
            "scaling",
            "digits",
            "--submissions",
            "adamw",
            "--data-dir",
            "{data}",
            "--results",
            "{tmp}/results",
        ),
        ("workload 'digits' has no ladder at scale 'smoke'",),
    ),
    "status-no-sweep": Bad(
        ("status", "--results", "{tmp}/results"), ("no sweep was started here",)
    ),
    "submit-malformed-search-space": Bad(
        ("submit", "{tmp}/sub", "--results", "{tmp}/results"),
        ("sub/search_space.json", "not valid JSON", "line 1"),
        _submission(GOOD_SOURCE, '{"lr": {"min": 0.01, "max": }'),
    ),
    "submit-parameter-in-two-optimizers": Bad(
        ("submit", "{tmp}/sub", "--references", "adamw", *SWEEP),
        ("is in 2 optimizer groups", "digits@smoke"),
        _submission(IN_TWO),
    ),
    "score-missing-results": Bad(
        ("score", "--results", "{tmp}/nowhere"), ("nowhere", "does not exist")
    ),
    "leaderboard-missing-results": Bad(
        ("leaderboard", "--results", "{tmp}/nowhere"), ("does not exist",)
    ),
    "report-bootstrap-zero": Bad(
        ("report", "fixed-model", "--bootstrap", "0"),
        ("argument --bootstrap: must be an integer >= 1, got '0'",),
    ),
    "report-empty-results": Bad(
        ("report", "pareto", "--results", "{tmp}/results"),
        ("results", "no trials in this results store"),
        {"results/": ""},
    ),
    "import-algoperf-missing-folder": Bad(
        ("import-algoperf", "{tmp}/logs", "--results", "{tmp}/results"),
        ("AlgoPerf log folder", "does not exist"),
    ),
    "sysinfo-extra-argument": Bad(("sysinfo", "--gpu"), ("unrecognized arguments: --gpu",)),
    "bench-overhead-unknown-workload": Bad(
        ("bench", "overhead", "--workload", "mnist", "--data-dir", "{data}"),
        ("unknown workload 'mnist'",),
    ),  # and no banner before it
    "bench-optimizers-unknown-submission": Bad(
        ("bench", "optimizers", "--submissions", "nope", "--device", "cpu", "--scale", "tiny"),
        ("unknown submission 'nope'",),
    ),
    "status-results-a-file": Bad(
        ("status", "--results", "{tmp}/afile"), ("--results", "afile: is a file"), {"afile": "x"}
    ),
    "resume-results-a-file": Bad(
        ("sweep", "--resume", "--results", "{tmp}/afile"),
        ("--results", "afile: is a file"),
        {"afile": "x"},
    ),
    "score-results-a-file": Bad(
        ("score", "--results", "{tmp}/afile"), ("afile", "is a file, not a folder"), {"afile": "x"}
    ),
    "bench-launchers-unknown-cluster": Bad(
        ("bench", "launchers", "--cluster", "nope"), ("cluster profile 'nope'", "profiles:")
    ),  # before Ray starts or a trial runs
    "bench-launchers-no-trials": Bad(
        ("bench", "launchers", "--trials", "0"),
        ("argument --trials: must be an integer >= 1, got '0'",),
    ),
    "calibrate-device-gpu": Bad(
        ("calibrate", "digits", "--device", "gpu", "--results", "{tmp}/results"),
        ("argument --device: must be cpu, cuda or cuda:N, got 'gpu'",),
    ),
    "calibrate-unknown-workload": Bad(
        ("calibrate", "mnist", "--results", "{tmp}/results"), ("unknown workload 'mnist'",)
    ),
    "data-prepare-unknown-dataset": Bad(
        ("data", "prepare", "mnist", "--dir", "{tmp}/data", *NO_NETWORK),
        ("unknown dataset 'mnist'", "cifar10, fineweb10B"),
    ),
    "data-prepare-dir-is-a-file": Bad(
        ("data", "prepare", "fineweb10B", "--dir", "{tmp}/afile", *NO_NETWORK),
        ("--dir", "afile: is a file, not a folder"),
        {"afile": "x"},
    ),
    "data-prepare-dir-under-a-file": Bad(
        ("data", "prepare", "cifar10", "--dir", "{tmp}/afile/data", *NO_NETWORK),
        ("--dir", "lies under", "afile, which is a file"),
        {"afile": "x"},
    ),
}


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a folder); bytecode caches left out."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if "__pycache__" not in p.parts
    }


def _refuse_to_train(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a trial was started for a command line that should have been refused")


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_refused_in_one_line(
    case: Bad,
    tmp_path: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on any machine
    monkeypatch.setattr("harness.isolation.run_isolated", _refuse_to_train)
    monkeypatch.setattr("sweeps.execute.run_lanes", _refuse_to_train)
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{data}", str(data_dir)) for a in case.argv]
    before = _snapshot(tmp_path)
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse refuses an option value by exiting
        status = exc.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1, err
    assert re.match(r"optbench( [a-z-]+)*: error: ", lines[0]), lines[0]
    for fragment in case.fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in err and "invalid _" not in err and out == ""
    assert _snapshot(tmp_path) == before


def test_the_table_covers_every_subcommand() -> None:
    def commands(
        parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
    ) -> set[tuple[str, ...]]:
        found: set[tuple[str, ...]] = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found |= commands(sub, (*prefix, name)) or {(*prefix, name)}
        return found

    every = commands(build_parser())
    covered = {
        case.argv[: len(command)]
        for case in BAD_INPUTS.values()
        for command in every
        if case.argv[: len(command)] == command
    }
    assert every - covered == set()
    assert len(every) >= 16


def _two_hardware_classes(root: Path, data_dir: Path) -> Path:
    results = root / "results"
    store = ResultsStore(results)
    for seed, hardware in ((1, "cpu-a"), (2, "cpu-b")):
        spec = TrialSpec(
            workload="digits",
            scale="smoke",
            submission="adamw",
            hparams_json="{}",
            seed=seed,
            data_dir=str(data_dir),
        )
        outcome = failed_outcome(spec, "stored by the test", get_workload)
        outcome.record.hardware_class = hardware
        store.write_trial(outcome.row, outcome.evals)
    return results


@pytest.mark.parametrize("command", ["score", "leaderboard"])
def test_mixed_hardware_classes_name_the_flag_and_the_folder(
    command: str, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _two_hardware_classes(tmp_path, data_dir)
    before = _snapshot(results)
    assert main([command, "--results", str(results)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"optbench: error: {results}: trials mix hardware classes ")
    assert "['cpu-a', 'cpu-b']" in line and line.endswith("pass --hardware-class with one of them")
    assert "hardware_class" not in line.removeprefix(f"optbench: error: {results}")
    assert main([command, "--results", str(results), "--hardware-class", "cpu-c"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert (
        line == f"optbench: error: {results}: no trials left to score with --hardware-class 'cpu-c'"
    )
    assert _snapshot(results) == before


def test_unreadable_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    (results / "trials").mkdir(parents=True)
    bad = results / "trials" / "0123abcd.parquet"
    bad.write_bytes(b"this is not parquet")
    before = _snapshot(results)
    for command in ("score", "leaderboard"):
        assert main([command, "--results", str(results)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert str(bad) in line and "not a readable parquet file" in line
    assert _snapshot(results) == before  # no leaderboard half-written


def test_validate_builds_a_factory_on_digits(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "adamw", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "adamw: ok (factory;" in out and "optimizer built on digits@smoke's 10 parameters" in out


def test_every_command_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (
        "list",
        "validate",
        "run",
        "sweep",
        "submit",
        "score",
        "leaderboard",
        "import-algoperf",
        "sysinfo",
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "example:\n  optbench " + command in capsys.readouterr().out


def test_store_is_untouched_by_failed_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    assert main(["sweep", "adamw", "no-such-opt", "--results", str(results)]) == 2
    assert ResultsStore(results).completed_trial_ids() == set()
