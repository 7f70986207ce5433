"""AlgoPerf compatibility (submission level 3): AlgoPerf's own submissions, run unmodified.

* `names`: makes `algoperf` / `algorithmic_efficiency` importable (the stand-in `shim`) when
  AlgoPerf is not installed; `harness.submission` installs it before importing any submission.
* `shim`: the stand-in package (AlgoPerf's `spec`, `pytorch_utils`, `param_utils`, ...).
* `view`: what a workload declares to take AlgoPerf submissions (`AlgoPerfView`).
* `adapter`: an optbench workload as AlgoPerf's `spec.Workload`.
* `stepper`: a submission's `update_params` driven as one trial's steps; reached only through
  `harness.stepper.make_stepper`, the one dispatch on the submission's level.

Nothing is imported here, so installing the names costs no torch.
"""

__all__ = ["adapter", "names", "shim", "stepper", "view"]
