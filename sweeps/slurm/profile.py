"""A SLURM cluster profile: what every trial job of a sweep asks SLURM for, in one TOML file.

`optbench sweep --launcher slurm --cluster NAME` reads
`sweeps/slurm/profiles/NAME.toml` (or a path):

    [job]                     # what each trial's job asks for
    partition = "gpu"
    nodes = 1
    tasks_per_node = 8        # > 1: a data-parallel trial, torch.distributed from SLURM's
                              # environment
    cpus_per_task = 8
    gpus_per_node = 8
    mem_gb = 200
    timeout_min = 120
    signal_delay_s = 90       # SIGUSR2 this long before the time limit
    requeue_on_timeout = 0    # times a job out of time is requeued (it resumes from its checkpoint)
    setup = ["module load cuda"]
    [job.sbatch]              # any other sbatch option, verbatim
    qos = "high"

    [sweep]
    array_parallelism = 64    # trial jobs in flight at once
    max_retries = 1           # re-runs of a trial whose process was killed (SIGKILL, OOM,
                              # node loss)
    poll_s = 5.0              # how often a waiting trial asks SLURM for its job's state
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import UsageError

__all__ = ["PROFILES_DIR", "SlurmProfile", "load_profile"]

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass(frozen=True, slots=True)
class SlurmProfile:
    """One cluster's job and sweep settings (see the module docstring for each key)."""

    name: str
    partition: str | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    mem_gb: float = 4.0
    timeout_min: int = 60
    signal_delay_s: int = 90
    requeue_on_timeout: int = 0
    setup: tuple[str, ...] = ()
    sbatch: dict[str, Any] = field(default_factory=dict)
    array_parallelism: int = 4
    max_retries: int = 1
    poll_s: float = 5.0

    @property
    def world_size(self) -> int:
        """Processes per trial: a job's tasks."""
        return self.nodes * self.tasks_per_node

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_node > 0 else "cpu"

    def executor_parameters(self) -> dict[str, Any]:
        """The profile as `submitit.AutoExecutor.update_parameters` keywords."""
        params: dict[str, Any] = {
            "nodes": self.nodes,
            "tasks_per_node": self.tasks_per_node,
            "cpus_per_task": self.cpus_per_task,
            "mem_gb": self.mem_gb,
            "timeout_min": self.timeout_min,
            "slurm_signal_delay_s": self.signal_delay_s,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_additional_parameters": dict(self.sbatch),
            "slurm_setup": list(self.setup),
        }
        if self.gpus_per_node:
            params["gpus_per_node"] = self.gpus_per_node
        if self.partition:
            params["slurm_partition"] = self.partition
        return params


_SECTIONS = {
    "job": (
        "partition",
        "nodes",
        "tasks_per_node",
        "cpus_per_task",
        "gpus_per_node",
        "mem_gb",
        "timeout_min",
        "signal_delay_s",
        "requeue_on_timeout",
        "setup",
        "sbatch",
    ),
    "sweep": ("array_parallelism", "max_retries", "poll_s"),
}


def load_profile(name_or_path: str) -> SlurmProfile:
    """Reads a profile by name (`sweeps/slurm/profiles/NAME.toml`) or path.

    Raises:
      UsageError: the file is missing or not TOML, or a key is unknown or of the wrong type.
    """
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise UsageError(f"cluster profile {name_or_path!r}: no file {path} (profiles: {known})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    values: dict[str, Any] = {"name": path.stem}
    for section, table in data.items():
        if section not in _SECTIONS or not isinstance(table, dict):
            raise UsageError(f"{path}: unknown section [{section}] (sections: job, sweep)")
        for key, value in table.items():
            if key not in _SECTIONS[section]:
                raise UsageError(
                    f"{path}: unknown key {key!r} in [{section}] "
                    f"(keys: {', '.join(_SECTIONS[section])})"
                )
            values[key] = _checked(path, section, key, value)
    return SlurmProfile(**values)


def _checked(path: Path, section: str, key: str, value: Any) -> Any:
    default = {f.name: f for f in fields(SlurmProfile)}[key]
    kind = str(default.type)
    if key == "setup":
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise UsageError(f"{path}: [{section}] setup must be a list of shell lines")
        return tuple(value)
    if key == "sbatch":
        if not isinstance(value, dict):
            raise UsageError(f"{path}: [{section}.sbatch] must be a table of sbatch options")
        return value
    if kind == "str | None":
        if not isinstance(value, str):
            raise UsageError(f"{path}: [{section}] {key} = {value!r} is not a string")
        return value
    number = (int,) if kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, number):
        raise UsageError(
            f"{path}: [{section}] {key} = {value!r} "
            f"is not a{'n int' if kind == 'int' else ' number'}"
        )
    may_be_zero = key in ("gpus_per_node", "requeue_on_timeout", "max_retries")
    if value < 0 or (value == 0 and not may_be_zero):
        raise UsageError(f"{path}: [{section}] {key} = {value!r} must be positive")
    return float(value) if kind == "float" else value
