"""The checks made before a trial starts: shape-only parameters, the factory's return value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.contract import Hyperparameters
from harness.errors import ContractError, UsageError
from harness.precheck import check_submission, check_trial, shape_only_params
from harness.stepper import check_factory, make_stepper
from harness.submission import Submission, load_submission
from harness.trial import TrialSpec
from workloads import WORKLOADS, get_workload

SPACE = {"lr": {"min": 0.01, "max": 0.1, "scaling": "log"}}


def _load(root: Path, body: str) -> Submission:
    folder = root / "sub"
    folder.mkdir()
    (folder / "submission.py").write_text(
        "import types\nimport torch\n\ndef optimizer(params, hp, info):\n    " + body + "\n"
    )
    (folder / "search_space.json").write_text(json.dumps(SPACE))
    return load_submission(folder)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_shape_only_params_are_the_trials_params(name: str, data_dir: Path) -> None:
    shaped = shape_only_params(get_workload(name, "smoke", data_dir), seed=3)
    workload = get_workload(name, "smoke", data_dir)
    workload.setup(torch.device("cpu"), 3)
    real = workload.param_groups(workload.build_model(3))
    assert shaped.roles == real.roles
    assert [(p.shape, p.dtype) for p in shaped] == [(p.shape, p.dtype) for p in real]
    assert all(p.device.type == "cpu" and p.requires_grad for p in shaped)
    assert len({p.untyped_storage().data_ptr() for p in shaped}) == len(shaped)  # no aliasing


REFUSED = {
    "returns None": ("return None", r"optimizer\(\) returned None; expected a torch.optim"),
    "returns a dict": ("return {'lr': hp['lr']}", r"optimizer\(\) returned dict"),
    "omits the head": (
        "return torch.optim.SGD(params.without_roles('head'), lr=hp['lr'])",
        r"a head parameter of shape \(10, 64\) is in 0 optimizer groups",
    ),
    "repeats the biases": (
        "return [torch.optim.SGD(params.params, lr=hp['lr']), "
        "torch.optim.SGD(params.with_roles('bias'), lr=hp['lr'])]",
        r"a bias parameter of shape \(16,\) is in 2 optimizer groups",
    ),
    "optax beside torch": (
        "return [torch.optim.SGD(params.params, lr=hp['lr']), "
        "types.SimpleNamespace(init=print, update=print)]",
        "an optax transformation must be the only optimizer",
    ),
}


@pytest.mark.parametrize("body, message", REFUSED.values(), ids=REFUSED.keys())
def test_check_factory_refuses_what_the_runner_refuses(
    body: str, message: str, tmp_path: Path, data_dir: Path
) -> None:
    submission = _load(tmp_path, body)
    workload = get_workload("digits", "smoke", data_dir)
    groups, hp, info = (
        shape_only_params(workload),
        Hyperparameters({"lr": 0.05}),
        workload.info("cpu"),
    )
    with pytest.raises(ContractError, match=message):
        check_factory(submission, groups, hp, info)
    with pytest.raises(ContractError, match=message):  # the same check builds the trial's optimizer
        make_stepper(submission, groups, hp, info, loss_fn=print, forward_backward=print)


def test_check_factory_turns_an_exception_into_one_line(tmp_path: Path, data_dir: Path) -> None:
    submission = _load(tmp_path, "raise ValueError('first line\\nsecond line')")
    with pytest.raises(ContractError) as info:
        check_submission(submission, get_workload("digits", "smoke", data_dir))
    expected = "raised ValueError: first line second line (given the parameters of digits@smoke)"
    assert str(info.value).endswith(f"optimizer(params, hp, info) {expected}")


def test_check_trial_refuses_unprepared_data_and_passes_a_good_trial(
    tmp_path: Path, data_dir: Path
) -> None:
    point = TrialSpec.canonical_hparams(load_submission("muon").search_space.center())
    spec = TrialSpec(
        workload="nanogpt",
        scale="full",
        submission="muon",
        hparams_json=point,
        seed=0,
        data_dir=str(tmp_path / "empty"),
        device="cuda",
    )
    prepare = r"FineWeb10B is not prepared .* `optbench data prepare fineweb10B --dir "
    with pytest.raises(UsageError, match=prepare):
        check_trial(spec, get_workload("nanogpt", "full", tmp_path / "empty"))
    assert not (tmp_path / "empty").exists()
    smoke = TrialSpec(
        workload="nanogpt",
        scale="smoke",
        submission="muon",
        hparams_json=point,
        seed=0,
        data_dir=str(data_dir),
    )
    check_trial(smoke, get_workload("nanogpt", "smoke", data_dir))
