"""Every command the README's `## Commands` block and each `--help` example show runs.

The commands are read from the README and from the epilogs of `sweeps.cli.build_parser()` (every
subcommand's `example:` lines), so the test follows them: a command with no entry in `CASES` fails
with a message saying to add one, and an entry no longer shown anywhere fails too.

Each entry says how its command is run small: the command's own arguments, tokens swapped for what
this machine has (`swap`: the vendored AlgoPerf logs for `LOGS`, the loopback server's URL), and
options appended to shrink it (`extra`: argparse keeps an option's last value, so `--trials 1`
after `--trials 5` wins): one trial per study, one study, 3 steps, the digits workload, tiny
benchmark shapes, a results folder inside the test's work folder. A command that needs what this
machine lacks (CUDA, a SLURM cluster with a `gpu` partition) must parse and be refused with one
`optbench: error:` line, exit status 2, no trial started and nothing written. A command run end to
end at this size by another test names that test (`elsewhere`) instead of running again.

Every command runs in-process through `sweeps.cli.main` in one work folder (`_work`): the README's
`my-optimizer` (its own example files), `submissions/` (a link to the references), a synthetic
results store with known answers (`tests/reports/synthetic.py`) at `results/bench` and, linked, at
the help's `results/smoke`, `results/resource` and `results/scaling`, which the score,
leaderboard and report commands read. The commands that write a store others read (the sweeps and
submits into `results/`, which `runs/a` links to, and one AlgoPerf import) run once, first, in the
order of `PRODUCERS` (`_produced`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from sweeps.cli import build_parser, main
from tests.reports.synthetic import write_synthetic_store
from tests.workloads.loopback import make_cifar, serve, serve_cifar, serve_fineweb, shard_bytes

REPO = Path(__file__).resolve().parent.parent
ALGOPERF = REPO / "tests" / "data" / "algoperf"
V06_LOGS = ALGOPERF / "previous_leaderboards" / "algoperf_v06" / "logs"
SCORE_LINE = r"\t\d\.\d{4}$"  # `optbench score` prints `name<TAB>score` per submission
TRAIN_SHARDS = 8


@dataclass(frozen=True, slots=True)
class Case:
    """How one shown command runs small here, and what it must do.

    Attributes:
      extra: appended to the command's arguments (options given again win: argparse keeps the last).
      swap: command tokens replaced by what this machine has (`{algoperf}`, `{url}` filled in).
      expect: regular expressions (multi-line) its stdout + stderr must match.
      status: its exit status; 2 means refused: one error line, no trial started, nothing written.
      files: paths (in the work folder) that must exist after it.
      stdout_file: a file it wrote whose text must be exactly what it printed.
      reads_produced: reads a store that `PRODUCERS` write.
      elsewhere: `path::test` that runs this command end to end at this size instead.
      same_as: a command of this table, run here, that this one differs from only as `why` says.
      why: for `elsewhere`, `same_as` and refusals, what differs and why.
    """

    extra: tuple[str, ...] = ()
    swap: Mapping[str, str] = field(default_factory=dict)
    expect: tuple[str, ...] = ()
    status: int = 0
    files: tuple[str, ...] = ()
    stdout_file: str = ""
    reads_produced: bool = False
    elsewhere: str = ""
    same_as: str = ""
    why: str = ""


SMALL_SWEEP = ("--workloads", "digits", "--trials", "1", "--studies", "1", "--max-steps", "3")
SMALL_SUBMIT = (*SMALL_SWEEP, "--references", "adamw,muon")
# One Ray sweep for every trial the producers need (see PRODUCERS).
FIRST_SUBMIT = (*SMALL_SWEEP, "--references", "adamw,muon,example-nadamw")
SMALL_REPORT = ("--bootstrap", "100")
TINY_BENCH = ("--scale", "tiny", "--steps", "1", "--repeats", "1", "--warmup", "0", "--quiet")
SMALL_OVERHEAD = ("--steps", "2", "--repeats", "1")
ONE_RUN = ("--max-steps", "3", "--results", "runs/single")
LEADERBOARD = (
    "wrote results/leaderboard.md and results/leaderboard.html",
    r"^\| 1 \| (adamw|muon) \|",
)
STATUS = (
    r"^sweep in (results|runs/a) \(local launcher\): ",
    r"^\| my-optimizer \| digits@smoke \| 1 \| 0 \| 0 \| 0 \| 0 \|",
    "finished: every planned trial is in the store",
)
SWEEP_STORE_SCORES = tuple(
    f"^{name}{SCORE_LINE}" for name in ("adamw", "muon", "my-optimizer", "example-nadamw")
)
NO_CUDA = "refused: this machine has no CUDA device"
SCALING_TEST = (
    "tests/sweeps/test_scaling_sweep.py::test_every_submission_runs_on_every_rung_and_reruns_skip"
)

# One case a line or two, aligned as a table: the formatter would spread each over ten.
# fmt: off
CASES: dict[str, Case] = {
    # -- the README's `## Commands` block ----------------------------------------------------
    "list": Case(expect=("^workloads:$", r"^  digits@smoke v\d+: test_accuracy >= 0.994",
                         "^reference submissions:$", r"^  adamw \(factory, 4 search dims\)$")),
    "validate my-optimizer": Case(expect=(r"my-optimizer: ok \(factory; search space of 2 dims",)),
    "run adamw --workload digits --hp lr=3e-3": Case(
        extra=ONE_RUN, expect=(r"^running adamw on digits@smoke with \{'lr': 0.003",
                               r'"status": "budget_exhausted"'), files=("runs/single/trials",)),
    "sweep adamw muon --trials 5 --studies 3": Case(extra=SMALL_SWEEP, expect=LEADERBOARD),
    "status --results results": Case(expect=STATUS, reads_produced=True),
    "submit my-optimizer": Case(extra=FIRST_SUBMIT, expect=(r"^my-optimizer: score \d\.\d{4}$",)),
    "score --results results/bench": Case(  # the synthetic store: muon is built to be fastest
        expect=(rf"\Amuon{SCORE_LINE}",
                *(f"^{s}{SCORE_LINE}" for s in ("adamw", "lion", "sgd-nesterov")))),
    "leaderboard --results results/bench": Case(
        expect=("wrote results/bench/leaderboard.md and results/bench/leaderboard.html",
                r"^\| rank \| submission \| score \|"), files=("results/bench/leaderboard.html",)),
    "report fixed-model --results results/bench": Case(
        extra=("--workload", "digits", "--scale", "smoke", *SMALL_REPORT),
        expect=(r"wrote results/bench/report-fixed-model/report.html, .*report.md and \d+ CSV",),
        files=("results/bench/report-fixed-model/report.md",)),
    "scaling nanogpt --submissions adamw,muon": Case(
        elsewhere=SCALING_TEST, why="this command with --scale smoke and --reference adamw (the "
        "defaults), 1 trial x 1 study x 20 steps on every rung, and its report"),
    "import-algoperf LOGS --results algoperf": Case(
        swap={"LOGS": "{algoperf}/previous_leaderboards/algoperf_v06/logs/external_tuning"},
        expect=(r"\(AlgoPerf 0\.6\)",
                r"imported \d+ new trial\(s\) \(\d+ external found, 0 already")),
    "bench overhead --workload digits --output results/bench-overhead/digits.md": Case(
        extra=SMALL_OVERHEAD, stdout_file="results/bench-overhead/digits.md",
        expect=("^# optbench bench overhead$", r"^digits@smoke, 2 steps", r"^\| optbench runner \|",
                r"^- clock ratio \(runner/loop\): \d+\.\d{3}",
                "wrote results/bench-overhead/digits.md and results/bench-overhead/digits.json")),
    "bench optimizers --output results/bench-optimizers/cpu.md": Case(
        extra=(*TINY_BENCH, "--submissions", "lion"), stdout_file="results/bench-optimizers/cpu.md",
        expect=("^# optbench bench optimizers$", r"^\| adamw \| 1 \| [\d.]+ \|",
                r"^\| lion \| 1 \|")),
    # SLURM's part: if it answers
    "bench launchers --output results/bench-launchers/local.md": Case(
        extra=("--trials", "1", "--steps", "3", "--probes", "1"),
        stdout_file="results/bench-launchers/local.md",
        expect=("^# optbench bench launchers$", r"^\| Ray per-trial overhead \| -?\d+\.\d{3} \|$",
                "wrote results/bench-launchers/local.md and results/bench-launchers/local.json")),
    "calibrate nanogpt --seeds 5": Case(
        elsewhere="tests/sweeps/test_calibrate.py::test_calibrate_runs_the_reference_per_seed_and_resumes",
        why="this command on digits with 2 seeds: calibrate trains each seed's whole smoke budget "
        "(no --max-steps), and one nanogpt seed alone takes ~11 s on 2 cores"),
    "data prepare cifar10": Case(
        extra=("--dir", "prepared/cifar", "--mirror", "{url}"),
        expect=("^cifar10: prepared in prepared/cifar/cifar10$",),
        files=("prepared/cifar/cifar10/train_images.npy", "prepared/cifar/cifar10/manifest.json")),
    # -- `--help` examples (each package's `register`) ---------------------------------------
    "submit submissions/example-nadamw --trials 4 --studies 2": Case(
        extra=SMALL_SUBMIT, expect=(r"^example-nadamw: score \d\.\d{4}$", *LEADERBOARD)),
    "validate submissions/adamw": Case(expect=(r"adamw: ok \(factory; search space of 4 dims",)),
    "run adamw --workload digits --hp lr=0.003 --seed 1": Case(
        same_as="run adamw --workload digits --hp lr=3e-3",
        why="the same trial at seed 1 (each `run` costs a fresh process, ~5 s here)"),
    "run path/to/self-tuning-submission --workload digits --ruleset self": Case(  # _work's
        extra=ONE_RUN, expect=(r'"status": "budget_exhausted"',)),
    "run muon --workload nanogpt --scale full --device cuda --processes 8": Case(
        status=2, expect=("--device cuda: no CUDA device",), why=NO_CUDA),
    "sweep adamw muon --workloads digits,nanogpt --trials 5 --studies 3": Case(
        extra=SMALL_SWEEP, expect=LEADERBOARD),
    "sweep adamw muon --launcher slurm --cluster gpu-example --results runs/a": Case(
        swap={"runs/a": "runs/slurm"}, status=2,
        why="refused: no SLURM cluster here with the profile's `gpu` partition (its own folder, "
        "so that a write would show)"),
    "sweep --resume --results runs/a": Case(
        expect=("wrote runs/a/leaderboard.md and runs/a/leaderboard.html",
                r"^my-optimizer: score \d\.\d{4}$"), reads_produced=True),
    ("sweep adamw muon --workloads nanogpt --track fixed-resource "
     "--memory-cap 512MiB --time-budget-s 20"): Case(
        elsewhere="tests/sweeps/test_fixed_resource.py::test_a_fixed_resource_sweep_under_a_cap_below_every_rung",
        why="this sweep under a 1 KiB cap (every trial over budget), 2 trials x 1 study x 6 steps"),
    ("scaling nanogpt --scale smoke --submissions adamw,muon --trials 4 --studies 2 "
     "--results runs/scaling --reference adamw"): Case(
        elsewhere=SCALING_TEST, why="this command at 1 trial x 1 study x 20 steps, and its report"),
    "status --results runs/a": Case(expect=STATUS, reads_produced=True),
    "submit path/to/my-optimizer --trials 4 --studies 2": Case(
        extra=SMALL_SUBMIT, expect=(r"^my-optimizer: score \d\.\d{4}$",)),
    "score --results results": Case(expect=SWEEP_STORE_SCORES, reads_produced=True),
    "score --results algoperf-results --held-out-rule": Case(  # AlgoPerf v0.6's published scores
        expect=(r"^shampoo\t0\.6244$", r"^baseline\t0\.4590$"), reads_produced=True),
    "score --results results --seed-gate": Case(expect=SWEEP_STORE_SCORES, reads_produced=True),
    "leaderboard --results results --out site/": Case(
        expect=("wrote site/leaderboard.md and site/leaderboard.html",
                r"^\| \d \| my-optimizer \|"),
        files=("site/leaderboard.html",), reads_produced=True),
    "import-algoperf logs/external_tuning --results algoperf-results": Case(
        swap={"logs/external_tuning":
                  "{algoperf}/previous_leaderboards/algoperf_v06/logs/external_tuning"},
        expect=(r"imported \d+ new trial\(s\) \(\d+ external found",)),
    "import-algoperf previous_leaderboards/algoperf_v05/logs/external_tuning --results v05": Case(
        # The v0.6 logs copied to a v0.5 path beside scoring/: the round named in the path picks
        # workload_targets_v05.json (AlgoPerf's v0.5 logs are not vendored).
        expect=(r"/scoring/workload_targets_v05\.json \(AlgoPerf 0\.5\)",
                r"imported \d+ new trial")),
    ("import-algoperf runs/self_tuning --targets workload_targets_v05.json "
     "--held-out held_out_workloads.json"): Case(
        swap={"runs/self_tuning": "{algoperf}/previous_leaderboards/algoperf_v06/logs/self_tuning",
              "workload_targets_v05.json": "{algoperf}/scoring/workload_targets_v05.json",
              "held_out_workloads.json":
                  "{algoperf}/scoring/algoperf_v05/held_out_workloads_algoperf_v05.json"},
        extra=("--results", "algoperf-self"),
        expect=(r"\(from --held-out ", r"imported \d+ new trial\(s\) \(\d+ self found")),
    "sysinfo": Case(expect=("^torch_version: ", "^cpu_count: ", "^cuda_available: ")),
    "bench overhead --workload nanogpt --steps 200 --repeats 5": Case(
        extra=SMALL_OVERHEAD,
        expect=(r"^nanogpt@smoke, 2 steps", r"^- wall ratio  \(runner/loop\): ")),
    "bench optimizers --device cuda --output bench/optimizers.md": Case(
        status=2, expect=("--device cuda: no CUDA device",), why=NO_CUDA),
    "bench optimizers --submissions muon,lion --output bench.md": Case(
        extra=TINY_BENCH, files=("bench.json",), stdout_file="bench.md",
        expect=(r"^\| adamw \| 1 \|", r"^\| muon \| 1 \|", r"^\| lion \| 1 \|")),
    "calibrate cifar10-94 --scale full --seeds 20 --device cuda": Case(
        status=2, expect=("--device cuda: no CUDA device",), why=NO_CUDA),
    "data prepare fineweb10B --train-shards 8 --dir /scratch/optbench-data": Case(
        extra=("--dir", "prepared/fineweb", "--mirror", "{url}"),
        expect=("^fineweb10B: prepared in prepared/fineweb/fineweb10B$",),
        files=tuple(f"prepared/fineweb/fineweb10B/fineweb_train_{i:06d}.bin"
                    for i in range(1, TRAIN_SHARDS + 1))),
    "report fixed-model --results results/smoke --out reports-out/fixed-model": Case(
        extra=("--workload", "digits", "--scale", "smoke", *SMALL_REPORT),
        expect=(r"wrote reports-out/fixed-model/report.html",),
        files=("reports-out/fixed-model/report.md", "reports-out/fixed-model/figures")),
    "report fixed-resource --results results/resource --reference adamw": Case(
        extra=SMALL_REPORT, expect=(r"wrote results/resource/report-fixed-resource/report.html",)),
    "report scaling --results results/scaling --workload nanogpt --scale smoke": Case(
        extra=SMALL_REPORT, expect=(r"wrote results/scaling/report-scaling/report.html",)),
    "report pareto --results results/smoke --workload digits": Case(
        extra=SMALL_REPORT, expect=(r"wrote results/smoke/report-pareto/report.html",)),
}
# fmt: on

# Run once, in this order, before the commands that read their stores. A sweep through Ray costs
# ~15 s here whatever it runs, so the first submit runs every trial the others need (my-optimizer,
# adamw, muon and example-nadamw on digits, one each) and the rest find theirs stored by trial id
# (same name, files, point and seed) and run none: they plan, skip, and write their leaderboards.
PRODUCERS = (
    "submit my-optimizer",
    "submit submissions/example-nadamw --trials 4 --studies 2",
    "sweep adamw muon --trials 5 --studies 3",
    "sweep adamw muon --workloads digits,nanogpt --trials 5 --studies 3",
    "submit path/to/my-optimizer --trials 4 --studies 2",
    "import-algoperf logs/external_tuning --results algoperf-results",
)


# -- the commands shown ---------------------------------------------------------------------------


def _command_key(line: str) -> str:
    words = shlex.split(line, comments=True)
    assert words[0] == "optbench", line
    return shlex.join(words[1:])


def readme_commands() -> list[str]:
    """The commands of the README's `## Commands` block."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"^## Commands\n.*?^```sh\n(.*?)^```", text, flags=re.M | re.S)
    assert match, "README.md has no ```sh block under `## Commands`"
    return [_command_key(line) for line in match[1].splitlines() if line.strip()]


def help_commands() -> list[str]:
    """The `example:` lines of every parser's epilog: the top level and each subcommand's."""
    found: list[str] = []
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop(0)
        epilog = parser.epilog or ""
        examples = epilog.partition("example:\n")[2]
        found += [_command_key(line) for line in examples.splitlines() if line.strip()]
        for action in parser._actions:  # argparse keeps subparsers only here
            if action.choices and isinstance(action.choices, dict):
                parsers += [p for p in action.choices.values() if p not in parsers]
    return found


SHOWN = list(dict.fromkeys(readme_commands() + help_commands()))


# -- the work folder ------------------------------------------------------------------------------


@dataclass(slots=True)
class Ran:
    status: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def _argv(command: str, case: Case, url: str = "") -> list[str]:
    fill = {"{algoperf}": str(ALGOPERF), "{url}": url}
    words = [case.swap.get(word, word) for word in shlex.split(command)] + list(case.extra)
    for key, value in fill.items():
        words = [word.replace(key, value) for word in words]
    return words


def _main(argv: list[str]) -> Ran:
    """`sweeps.cli.main(argv)` with its output captured and torch's thread count kept."""
    out, err, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        status = exc.code if isinstance(exc.code, int) else 1
    finally:
        torch.set_num_threads(threads)
    return Ran(status, out.getvalue(), err.getvalue())


def _write_readme_submission(folder: Path) -> None:
    """The README's `my-optimizer`: its `submission.py` and `search_space.json` blocks."""
    text = (REPO / "README.md").read_text()
    source = re.search(r"^```python\n# my-optimizer/submission.py\n(.*?)^```", text, re.M | re.S)
    space = re.search(r"^```json\n(.*?)^```", text[source.end() :] if source else "", re.M | re.S)
    assert source and space, "README.md lost its my-optimizer example (python + json blocks)"
    folder.mkdir(parents=True)
    (folder / "submission.py").write_text(source[1])
    (folder / "search_space.json").write_text(space[1])
    (folder / "README.md").write_text("# my-optimizer\n\nNAdamW: the README's example.\n")


def _write_self_tuning_submission(folder: Path) -> None:
    """A self-tuning submission (no search space): AdamW with its own fixed hyperparameters."""
    folder.mkdir(parents=True)
    (folder / "submission.py").write_text(SELF_TUNING_SOURCE)
    (folder / "README.md").write_text("# self-tuning AdamW\n\nlr 2e-3, weight decay 0.01.\n")


SELF_TUNING_SOURCE = """import torch


def optimizer(params, hp, info):
    return torch.optim.AdamW(params.torch_groups(weight_decay=0.01), lr=2e-3)
"""


@pytest.fixture(scope="module")
def _work(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Path]:
    """The folder every command runs in (see the module docstring), with the smoke data shared."""
    work = tmp_path_factory.mktemp("readme") / "work"
    _write_readme_submission(work / "my-optimizer")
    shutil.copytree(work / "my-optimizer", work / "path" / "to" / "my-optimizer")
    _write_self_tuning_submission(work / "path" / "to" / "self-tuning-submission")
    (work / "submissions").symlink_to(REPO / "submissions")
    write_synthetic_store(work / "results" / "bench")
    for name in ("smoke", "resource", "scaling"):
        (work / "results" / name).symlink_to("bench")
    (work / "runs").mkdir()
    (work / "runs" / "a").symlink_to(Path("..") / "results")
    shutil.copytree(
        V06_LOGS / "external_tuning",
        work / "previous_leaderboards" / "algoperf_v05" / "logs" / "external_tuning",
    )
    (work / "scoring").symlink_to(ALGOPERF / "scoring")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPTBENCH_DATA_DIR", str(data_dir))
        patch.chdir(work)
        yield work


@pytest.fixture(scope="module")
def _produced(_work: Path) -> dict[str, Ran]:
    """Runs `PRODUCERS` once, in order (each in the work folder); their results by command."""
    return {command: _main(_argv(command, CASES[command])) for command in PRODUCERS}


@pytest.fixture
def _loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The loopback server with CIFAR-10 and FineWeb10B (validation + 8 train shards) to serve."""
    with serve(monkeypatch) as server:
        serve_cifar(server, make_cifar(seed=0), monkeypatch)
        rng = np.random.default_rng(0)
        names = [
            "fineweb_val_000000.bin",
            *(f"fineweb_train_{i:06d}.bin" for i in range(1, TRAIN_SHARDS + 1)),
        ]
        serve_fineweb(
            server, {n: shard_bytes(tmp_path, rng.integers(0, 50257, 600)) for n in names}
        )
        yield server.url


def _snapshot(folder: Path) -> set[tuple[str, int, int]]:
    """Every file and folder under `folder` (links not followed), with size and modification
    time."""
    found = set()
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            stat = (Path(root) / name).lstat()
            found.add((str(Path(root, name).relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    return found


def _refuse_to_start(*args: object, **kwargs: object) -> None:
    raise AssertionError("a refused command started trials: it must refuse before any trial runs")


# -- the tests ------------------------------------------------------------------------------------


def test_every_shown_command_has_an_entry_and_every_entry_is_shown() -> None:
    missing = [command for command in SHOWN if command not in CASES]
    assert not missing, (
        f"add an entry to CASES in {Path(__file__).name} saying how each of "
        f"these commands runs small: {missing}"
    )
    stale = sorted(set(CASES) - set(SHOWN))
    assert not stale, f"CASES entries no longer in the README or any --help: {stale}"
    assert set(PRODUCERS) <= set(CASES)


@pytest.mark.parametrize("command", SHOWN, ids=lambda c: c if len(c) <= 100 else c[:97] + "...")
def test_shown_command_runs(
    command: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES.get(command)
    assert case is not None, f"add an entry to CASES for `optbench {command}`"
    if case.elsewhere:  # that test exists and runs this subcommand
        path, _, name = case.elsewhere.partition("::")
        source = (REPO / path).read_text()
        assert case.why and f"\ndef {name}(" in source, case.elsewhere
        assert f'"{command.split()[0]}"' in source, (
            f"{case.elsewhere} runs no `{command.split()[0]}`"
        )
        return
    if case.same_as:
        ran_instead = CASES.get(case.same_as, Case(same_as="?"))
        assert (
            case.why
            and case.same_as in SHOWN
            and not (ran_instead.same_as or ran_instead.elsewhere)
        )
        assert command.split()[0] == case.same_as.split()[0], case.same_as
        return
    work = request.getfixturevalue("_work")
    if command in PRODUCERS:
        ran = request.getfixturevalue("_produced")[command]
    else:
        if case.reads_produced:
            request.getfixturevalue("_produced")
        url = request.getfixturevalue("_loopback") if "{url}" in case.extra else ""
        before = _snapshot(work)
        if case.status == 2:
            monkeypatch.setattr("sweeps.execute.run_lanes", _refuse_to_start)
            monkeypatch.setattr("harness.isolation.run_isolated", _refuse_to_start)
        ran = _main(_argv(command, case, url))
    assert ran.status == case.status, f"`optbench {command}` exited {ran.status}:\n{ran.text}"
    for pattern in case.expect:
        assert re.search(pattern, ran.text, flags=re.M), f"{pattern!r} not in:\n{ran.text}"
    if case.status == 2:
        errors = [line for line in ran.err.splitlines() if line.startswith("optbench: error:")]
        assert len(errors) == 1, ran.err
        assert _snapshot(work) == before, "a refused command wrote files"
    for name in case.files:
        assert (work / name).exists(), f"`optbench {command}` did not write {name}"
    if case.stdout_file:
        assert (work / case.stdout_file).read_text().strip() == ran.out.strip()


def test_reruns_find_their_trials_stored(_produced: dict[str, Ran], _work: Path) -> None:
    """Only the first submit ran trials: one per submission is stored."""
    from harness.results import ResultsStore

    trials = ResultsStore(_work / "results").read_trials()
    assert sorted(trials["submission"]) == ["adamw", "example-nadamw", "muon", "my-optimizer"]
