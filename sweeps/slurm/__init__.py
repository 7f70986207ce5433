"""SLURM: the trial job (`job`), cluster profiles (`profile`), and the local test cluster script."""

__all__: list[str] = []  # its modules are imported by name: `sweeps.slurm.job`, `.profile`
