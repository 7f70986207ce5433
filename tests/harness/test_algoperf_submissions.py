"""Level 3 with what real AlgoPerf submissions do: read every `spec.Workload` member, import helper
modules from their own folder, tune themselves (no search space), and hard-code CUDA.

Every submission here is written in AlgoPerf's format into the test's own folder.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.algoperf.adapter import AlgoPerfWorkload
from harness.algoperf.shim import spec as shim_spec
from harness.errors import ContractError, UsageError
from harness.needs_cuda import needs_cuda_line
from harness.results import ResultsStore
from harness.runner import run_trial
from harness.submission import load_submission
from harness.trial import ResolvedTrial, TrialSpec, TrialStatus
from sweeps.cli import main
from sweeps.identity import spec_trial_id
from sweeps.rulesets import SelfRuleset, WorkloadAtScale
from tests.harness.algoperf_sources import SGD_SPACE, sgd_source
from workloads import Digits, NanoGPT, get_workload

CPU = torch.device("cpu")

# The members of AlgoPerf 0.6's `spec.Workload` (algoperf/spec.py of
# mlcommons/algorithmic-efficiency), other than `__init__`: the stand-in must mirror exactly
# these.
ALGOPERF_WORKLOAD_MEMBERS = {
    "target_metric_name",
    "has_reached_validation_target",
    "has_reached_test_target",
    "_build_input_queue",
    "attach_metrics_logger",
    "validation_target_value",
    "test_target_value",
    "loss_type",
    "num_train_examples",
    "eval_batch_size",
    "num_eval_train_examples",
    "num_validation_examples",
    "num_test_examples",
    "train_mean",
    "train_stddev",
    "max_allowed_runtime_sec",
    "eval_period_time_sec",
    "step_hint",
    "param_shapes",
    "model_params_types",
    "is_output_params",
    "init_model_fn",
    "model_fn",
    "output_activation_fn",
    "loss_fn",
    "_eval_model_on_split",
    "eval_model",
    "metrics_logger",
}

# Members optbench has no value for: each raises a ContractError naming it.
UNAVAILABLE = {
    "test_target_value",
    "num_test_examples",
    "has_reached_test_target",
    "num_eval_train_examples",
    "eval_batch_size",
    "train_mean",
    "train_stddev",
    "init_model_fn",
    "_build_input_queue",
    "_eval_model_on_split",
    "eval_model",
}


def _write(folder: Path, files: dict[str, str], space: dict[str, Any] | None = SGD_SPACE) -> Path:
    """Writes `files` (relative path -> text) under `folder`, and `search_space.json` unless
    `space` is None (a self-tuning submission)."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if space is not None:
        (folder / "search_space.json").write_text(json.dumps(space))
    return folder


def _spec(folder: Path, data_dir: Path, max_steps: int = 3, **fields: Any) -> TrialSpec:
    return TrialSpec(
        workload="digits",
        scale="smoke",
        submission=str(folder),
        hparams_json=fields.pop("hparams_json", '{"learning_rate": 0.05}'),
        seed=0,
        data_dir=str(data_dir),
        max_steps=max_steps,
        stop_at_target=False,
        **fields,
    )


def _ran(outcome: Any) -> None:
    assert outcome.status in (TrialStatus.BUDGET_EXHAUSTED, TrialStatus.TARGET_REACHED), (
        outcome.row["error"]
    )


# -- every member of spec.Workload --------------------------------------------------------------


def _digits_adapter(data_dir: Path) -> AlgoPerfWorkload:
    workload = Digits("smoke", data_dir)
    workload.setup(CPU, seed=0)
    model = workload.build_model(seed=0)
    return AlgoPerfWorkload(
        workload, model, workload.param_groups(model), workload.info("cpu"), shim_spec
    )


def _stand_in_members() -> set[str]:
    return {n for n in vars(shim_spec.Workload) if not n.startswith("__") and n != "_abc_impl"}


def test_the_stand_in_workload_mirrors_algoperf() -> None:
    assert _stand_in_members() == ALGOPERF_WORKLOAD_MEMBERS


def test_every_workload_member_is_a_value_or_a_clear_error(data_dir: Path) -> None:
    adapter = _digits_adapter(data_dir)
    for name in sorted(_stand_in_members()):
        is_method = inspect.isfunction(vars(shim_spec.Workload)[name])
        try:
            value = getattr(adapter, name)
            if is_method and name in UNAVAILABLE:
                value(None)
        except ContractError as exc:
            assert name in UNAVAILABLE, f"{name}: {exc}"
            assert f"workload.{name} is not available in optbench: " in str(exc)
            assert "\n" not in str(exc)
            continue
        assert name not in UNAVAILABLE, f"{name} gave {value!r}"
        assert callable(value) == is_method, name


def test_workload_values_are_optbench_s_own(data_dir: Path) -> None:
    adapter = _digits_adapter(data_dir)
    # digits@smoke: 30 s and 320 steps budgeted, evaluated every 40 steps
    assert adapter.max_allowed_runtime_sec == 30.0 and adapter.step_hint == 320
    assert adapter.eval_period_time_sec == pytest.approx(40 * 30.0 / 320)
    steps_per_eval = adapter.eval_period_time_sec / (
        adapter.max_allowed_runtime_sec / adapter.step_hint
    )
    assert steps_per_eval == pytest.approx(40)  # what AlgoPerf's LAWA submissions compute
    assert (adapter.num_train_examples, adapter.num_validation_examples) == (1437, 360)
    assert adapter.validation_target_value == 0.994
    assert adapter.has_reached_validation_target({"validation/accuracy": 0.995})
    assert not adapter.has_reached_validation_target({"test_accuracy": 0.9})
    with pytest.raises(ContractError, match="neither validation/accuracy nor test_accuracy"):
        adapter.has_reached_validation_target({"validation/loss": 0.1})
    probabilities = adapter.output_activation_fn(torch.randn(4, 10), "pytorch")
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(4))
    with pytest.raises(ContractError, match="framework 'jax'"):
        adapter.output_activation_fn(torch.randn(4, 10), "jax")
    logger = object()
    adapter.attach_metrics_logger(logger)
    assert adapter.metrics_logger is logger


def test_a_token_stream_has_no_count_of_training_examples(data_dir: Path) -> None:
    workload = NanoGPT("smoke", data_dir)
    workload.setup(CPU, seed=0)
    model = workload.build_model(seed=0)
    adapter = AlgoPerfWorkload(
        workload, model, workload.param_groups(model), workload.info("cpu"), shim_spec
    )
    with pytest.raises(ContractError, match="workload.num_train_examples .*nanogpt declares no"):
        _ = adapter.num_train_examples


LAWA_LIKE = dict(
    header="STEPS_PER_EVAL = []",
    init="time_per_step = workload.max_allowed_runtime_sec / workload.step_hint\n"
    "    STEPS_PER_EVAL.append(round(workload.eval_period_time_sec / time_per_step))\n"
    "    STEPS_PER_EVAL.append(workload.num_train_examples)",
)


def test_a_lawa_style_submission_trains(tmp_path: Path, data_dir: Path) -> None:
    folder = _write(tmp_path / "lawa", {"submission.py": sgd_source(**LAWA_LIKE)})
    outcome = run_trial(_spec(folder, data_dir), get_workload)
    _ran(outcome)
    assert load_submission(folder).module.STEPS_PER_EVAL[-2:] == [40, 1437]


# -- helper modules from the submission's folder ------------------------------------------------

HELPERS = {
    "submission.py": sgd_source(
        header="""
        import lawa_utils
        from lawa_utils import FACTOR
        import mypkg.core
        from .relative import RELATIVE
        from submissions.self_tuning.with_helpers.repo_path import REPO_PATH
        from algorithms.with_helpers import relative as relative_again
        SEEN = []
        """,
        update="from lazy_helper import LAZY\n    SEEN.append(LAZY)",
    ),
    "lawa_utils.py": "FACTOR = 2\n",
    "mypkg/__init__.py": "",
    "mypkg/core.py": (
        "from . import inner\nimport lawa_utils\nVALUE = inner.X * lawa_utils.FACTOR\n"
    ),
    "mypkg/inner.py": "X = 21\n",
    "relative.py": "RELATIVE = 'relative'\n",
    "repo_path.py": "REPO_PATH = 'repo path'\n",
    "lazy_helper.py": "LAZY = 'lazy'\n",
}


def test_helper_modules_import_at_load_and_inside_functions(tmp_path: Path, data_dir: Path) -> None:
    folder = _write(tmp_path / "with_helpers", HELPERS)
    module = load_submission(folder).module
    assert module.FACTOR == 2 and module.mypkg.core.VALUE == 42
    assert module.RELATIVE == "relative" and module.REPO_PATH == "repo path"
    assert module.relative_again is module.relative  # the repository-path form, `from a.<folder>`
    for name in ("lawa_utils", "mypkg", "relative", "repo_path", "lazy_helper"):
        assert name not in sys.modules  # only as the submission's own submodules
    outcome = run_trial(_spec(folder, data_dir, max_steps=2), get_workload)
    _ran(outcome)
    assert module.SEEN[-2:] == ["lazy", "lazy"]  # imported in update_params, step after step


def _utils_submission(folder: Path, value: str) -> Path:
    source = (
        "import utils\n\ndef own():\n    return utils.WHO\n\ndef lazy():\n"
        "    from utils import WHO\n    return WHO\n" + sgd_source()
    )
    return _write(folder, {"submission.py": source, "utils.py": f"WHO = {value!r}\n"})


def test_two_submissions_each_get_their_own_helper_of_the_same_name(tmp_path: Path) -> None:
    first = load_submission(_utils_submission(tmp_path / "a", "first")).module
    second = load_submission(_utils_submission(tmp_path / "b", "second")).module
    assert (first.own(), first.lazy()) == ("first", "first")
    assert (second.own(), second.lazy()) == ("second", "second")
    assert first.utils is not second.utils and "utils" not in sys.modules
    # the same folder name and submission.py, different helpers: still two modules
    third = load_submission(_utils_submission(tmp_path / "c" / "a", "third")).module
    assert third.lazy() == "third" and first.lazy() == "first"


def test_helpers_enter_the_source_hash_only_when_there_are_any(tmp_path: Path) -> None:
    folder = _write(tmp_path / "plain", {"submission.py": sgd_source()})
    old_formula = folder.joinpath("submission.py").read_bytes() + b"\0"
    old_formula += folder.joinpath("search_space.json").read_bytes()
    assert load_submission(folder).source_hash == hashlib.sha256(old_formula).hexdigest()
    (folder / "helper.py").write_text("X = 1\n")
    with_helper = load_submission(folder).source_hash
    (folder / "helper.py").write_text("X = 2\n")
    assert (
        len(
            {
                hashlib.sha256(old_formula).hexdigest(),
                with_helper,
                load_submission(folder).source_hash,
            }
        )
        == 3
    )


def test_a_jax_submission_is_one_clear_line(tmp_path: Path) -> None:
    source = sgd_source().replace("import torch\n", "import jax.numpy as jnp\n", 1)
    folder = _write(tmp_path / "jax_sub", {"submission.py": source})
    with pytest.raises(ContractError, match="an AlgoPerf JAX submission .*PyTorch submissions"):
        load_submission(folder)


# -- self-tuning submissions (no search space) --------------------------------------------------

SELF_TUNING = dict(
    header="SEEN = []",
    init="assert hyperparameters is None, hyperparameters  # AlgoPerf's self-tuning runner\n"
    "    SEEN.append(hyperparameters)",
)


def test_a_self_tuning_submission_is_refused_outside_the_self_ruleset(
    tmp_path: Path, capsys: Any
) -> None:
    folder = _write(
        tmp_path / "self_tuned", {"submission.py": sgd_source(**SELF_TUNING)}, space=None
    )
    with pytest.raises(UsageError, match="no search space .*runs with --ruleset self"):
        load_submission(folder)
    results = tmp_path / "results"
    for argv in (
        ["run", str(folder), "--workload", "digits"],
        ["run", str(folder), "--workload", "digits", "--ruleset", "self", "--hp", "lr=1"],
        ["sweep", str(folder), "--workloads", "digits", "--ruleset", "external"],
    ):
        assert main([*argv, "--results", str(results)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("--ruleset self" in err or "self-tuning" in err), err
    assert not results.exists()


def test_a_self_tuning_submission_runs_under_the_self_ruleset(
    tmp_path: Path, data_dir: Path
) -> None:
    folder = _write(
        tmp_path / "self_tuned", {"submission.py": sgd_source(**SELF_TUNING)}, space=None
    )
    submission = load_submission(folder, allow_self_tuning=True)
    assert submission.is_self_tuning and submission.search_space.center() == {}
    (lane,) = SelfRuleset(num_studies=1).lanes(
        str(folder),
        submission.name,
        submission.search_space,
        [WorkloadAtScale("digits", "smoke")],
        str(data_dir),
    )
    spec = lane.trial(0)
    assert spec.ruleset == "self" and spec.hparams == {}
    outcome = run_trial(TrialSpec.from_dict({**spec.to_dict(), "max_steps": 3}), get_workload)
    _ran(outcome)
    assert outcome.row["ruleset"] == "self" and submission.module.SEEN[-1] is None
    resolved = ResolvedTrial(spec, Digits.version, submission.name, submission.source_hash)
    assert spec_trial_id(spec) == resolved.trial_id


def test_optbench_run_ruleset_self(tmp_path: Path, data_dir: Path) -> None:
    folder = _write(
        tmp_path / "self_tuned", {"submission.py": sgd_source(**SELF_TUNING)}, space=None
    )
    results = tmp_path / "results"
    assert (
        main(
            [
                "run",
                str(folder),
                "--workload",
                "digits",
                "--max-steps",
                "3",
                "--ruleset",
                "self",
                "--data-dir",
                str(data_dir),
                "--results",
                str(results),
            ]
        )
        == 0
    )
    (row,) = ResultsStore(results).read_trials().to_dict("records")
    assert row["status"] == TrialStatus.BUDGET_EXHAUSTED, row["error"]
    assert row["ruleset"] == "self" and row["hparams_json"] == "{}"


# -- CUDA hard-coded on a machine (or a trial) without it --------------------------------------

# torch.zeros(..., device="cuda") fails on a machine without CUDA; on one with CUDA the sum with a
# CPU parameter fails instead, since the trial runs on the CPU. Either way: "needs CUDA".
CUDA_AT_INIT = sgd_source(
    init='x = torch.zeros(3, device="cuda") + next(model_params.parameters()).flatten()[:3]'
)
CUDA_AT_IMPORT = "import torch\nSCALE = torch.ones(1).cuda()\n" + sgd_source()


def test_cuda_at_init_fails_the_trial_with_one_clear_line(tmp_path: Path, data_dir: Path) -> None:
    folder = _write(tmp_path / "cuda_init", {"submission.py": CUDA_AT_INIT})
    outcome = run_trial(_spec(folder, data_dir), get_workload)
    assert outcome.status == TrialStatus.FAILED
    line = needs_cuda_line(outcome.row["error"])
    assert line is not None, outcome.row["error"]
    assert line.startswith(
        f"{_where(folder, CUDA_AT_INIT, 'torch.zeros')} (in init_optimizer_state: "
        'x = torch.zeros(3, device="cuda")'
    )
    assert "needs CUDA" in line and "--device cuda" in line
    assert "Traceback" in outcome.row["error"]  # kept below the line, for the record


def _where(folder: Path, source: str, fragment: str) -> str:
    """`file:line` of the first line of `source` holding `fragment`."""
    line = next(i for i, text in enumerate(source.splitlines(), 1) if fragment in text)
    return f"{load_submission(folder).folder / 'submission.py'}:{line}"


def test_cuda_at_import_is_one_line_and_exit_2(tmp_path: Path, capsys: Any) -> None:
    folder = _write(tmp_path / "cuda_import", {"submission.py": CUDA_AT_IMPORT})
    if torch.cuda.is_available():  # where there is CUDA, the import works
        assert load_submission(folder).module.SCALE.is_cuda
        return
    with pytest.raises(ContractError) as info:
        load_submission(folder)
    assert str(info.value).startswith(
        f"{folder.resolve() / 'submission.py'}:2 (in <module>: SCALE = torch.ones(1).cuda())"
    )
    results = tmp_path / "results"
    assert main(["run", str(folder), "--workload", "digits", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs CUDA" in err and "which this machine lacks" in err
    assert not results.exists()


def test_optbench_run_ends_with_exit_2_when_the_trial_needs_cuda(
    tmp_path: Path, data_dir: Path, capsys: Any
) -> None:
    folder = _write(tmp_path / "cuda_init", {"submission.py": CUDA_AT_INIT})
    argv = [
        "run",
        str(folder),
        "--workload",
        "digits",
        "--max-steps",
        "2",
        "--data-dir",
        str(data_dir),
        "--results",
        str(tmp_path / "results"),
    ]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "needs CUDA" in captured.err
    where = _where(folder, CUDA_AT_INIT, "torch.zeros")
    assert captured.err.splitlines()[-1].startswith(f"optbench: error: {where} (in init_")
