"""SLURM: the trial job (`job`), cluster profiles (`profile`), and the local test cluster script."""
