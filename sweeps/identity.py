"""The id a planned trial will have, before it runs: its spec resolved against the workload's
version and the submission's files (`harness.trial.ResolvedTrial`), as the runner resolves it."""

from __future__ import annotations

import functools

from harness.submission import load_submission
from harness.trial import ResolvedTrial, RulesetName, TrialSpec
from workloads import WORKLOADS

__all__ = ["resolve_trial", "spec_trial_id", "submission_name"]


@functools.cache
def _submission_identity(submission: str, is_self_ruleset: bool) -> tuple[str, str]:
    loaded = load_submission(submission, allow_self_tuning=is_self_ruleset)
    return loaded.name, loaded.source_hash


def resolve_trial(spec: TrialSpec) -> ResolvedTrial:
    """`spec` with its workload's version and its submission's name and source hash (each
    submission folder is read once per process)."""
    name, source_hash = _submission_identity(spec.submission, spec.ruleset == RulesetName.SELF)
    return ResolvedTrial(spec, WORKLOADS[spec.workload].version, name, source_hash)


def spec_trial_id(spec: TrialSpec) -> str:
    """The id the runner will give this spec's trial."""
    return resolve_trial(spec).trial_id


def submission_name(submission: str) -> str:
    """The name of the submission a spec names (a self-tuning one too)."""
    return _submission_identity(submission, True)[0]
