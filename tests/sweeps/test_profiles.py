"""Cluster profiles: the shipped ones load, and a bad profile is refused naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from sweeps.cli import main
from sweeps.slurm.profile import PROFILES_DIR, load_profile


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
def test_shipped_profiles_load(name: str) -> None:
    profile = load_profile(name)
    params = profile.executor_parameters()
    assert params["timeout_min"] == profile.timeout_min
    assert params["slurm_array_parallelism"] == profile.array_parallelism
    assert profile.world_size == profile.nodes * profile.tasks_per_node


def test_gpu_profile_asks_for_gpus_and_runs_trials_on_cuda() -> None:
    profile = load_profile("gpu-example")
    assert profile.device == "cuda" and profile.executor_parameters()["gpus_per_node"] == 1
    assert load_profile("local").device == "cpu"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[job]\npartitio = 'x'\n", "unknown key 'partitio' in [job]"),
        ("[jobs]\n", "unknown section [jobs]"),
        ("[job]\ncpus_per_task = 'two'\n", "cpus_per_task = 'two' is not an int"),
        ("[job]\nmem_gb = 0\n", "mem_gb = 0 must be positive"),
        ("[sweep]\nmax_retries = -1\n", "max_retries = -1 must be positive"),
        ("[job]\nsetup = 'module load x'\n", "setup must be a list"),
        ("[job\n", "not valid TOML"),
    ],
)
def test_bad_profile_is_refused_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_profile(str(path))
    assert str(path) in str(info.value) and message in str(info.value)


def test_sweep_with_an_unknown_profile_exits_2_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "r"
    code = main(
        ["sweep", "adamw", "--launcher", "slurm", "--cluster", "nope", "--results", str(results)]
    )
    assert code == 2
    assert "cluster profile 'nope'" in capsys.readouterr().err
    assert not results.exists()


def test_slurm_launcher_needs_a_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "adamw", "--launcher", "slurm"]) == 2
    assert "--cluster PROFILE" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, retries",
    [
        ([], 2),  # the profile's own
        (["--max-retries", "1"], 1),  # the command line wins, even at the local default
        (["--max-retries", "0"], 0),
    ],
)
def test_max_retries_comes_from_the_profile_unless_given(extra: list[str], retries: int) -> None:
    from sweeps.cli import build_parser
    from sweeps.commands import plan_of
    from sweeps.execute import launch_setup

    argv = ["sweep", "adamw", "--launcher", "slurm", "--cluster", "gpu-example", *extra]
    args = build_parser().parse_args(argv)
    args.argv = argv
    setup = launch_setup(plan_of(args))
    assert setup.max_retries == retries
    assert setup.slurm is not None and setup.slurm.max_retries == retries
