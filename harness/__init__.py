"""optbench's core: the submission contract, the clock, the trial runner and the results store.

Names are loaded on first use, so importing `harness.results` (as the torch-free `reports` package
does) never imports torch.
"""

from __future__ import annotations

from harness.lazy import lazy_exports

__all__ = [
    "Budget",
    "Clock",
    "ContractError",
    "Direction",
    "FullControlSubmission",
    "Hyperparameters",
    "OptbenchError",
    "ParamGroups",
    "ResultsSchemaError",
    "ResultsStore",
    "Role",
    "StepContext",
    "Target",
    "TrialSpec",
    "TrialStatus",
    "UsageError",
    "Workload",
    "WorkloadConfig",
    "WorkloadInfo",
    "load_submission",
    "run_trial",
    "warmup_cosine",
]

_HOME = {
    "Budget": "workload",
    "Direction": "target",
    "Target": "target",
    "Workload": "workload",
    "WorkloadConfig": "workload",
    "Clock": "clock",
    "ContractError": "errors",
    "OptbenchError": "errors",
    "ResultsSchemaError": "errors",
    "UsageError": "errors",
    "FullControlSubmission": "contract",
    "Hyperparameters": "contract",
    "ParamGroups": "contract",
    "Role": "contract",
    "StepContext": "contract",
    "WorkloadInfo": "contract",
    "ResultsStore": "results",
    "TrialSpec": "trial",
    "TrialStatus": "trial",
    "load_submission": "submission",
    "run_trial": "runner",
    "warmup_cosine": "schedules",
}


__getattr__ = lazy_exports(__name__, _HOME)
