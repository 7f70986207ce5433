"""Level 3: AlgoPerf-format submissions run unmodified through the adapter on smoke workloads."""

from __future__ import annotations

import functools
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from harness.algoperf.adapter import AlgoPerfWorkload, algoperf_eval_result
from harness.algoperf.names import PACKAGE_NAMES, install_algoperf_names
from harness.algoperf.shim import spec as shim_spec
from harness.clock import Clock
from harness.contract import Hyperparameters
from harness.errors import ContractError
from harness.runner import run_trial
from harness.stepper import make_stepper
from harness.stepping import TrialContext
from harness.submission import Level, load_submission
from harness.trial import TrialSpec, TrialStatus
from harness.workload import Workload
from tests.harness.algoperf_sources import sgd_source
from workloads import Diffusion, Digits, NanoGPT, get_workload

CPU = torch.device("cpu")

# -- AlgoPerf-format submissions (as a submitter would write them for AlgoPerf's PyTorch track) --

NADAMW = '''
"""NAdamW with linear warmup and cosine decay, in AlgoPerf's PyTorch API (`algoperf` name)."""

import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from absl import logging
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()
CALLS: List[Tuple[str, int]] = []


class NAdamW(torch.optim.Optimizer):
    """AdamW with a Nesterov look-ahead of the first moment (Dozat 2016; Loshchilov & Hutter)."""

    def __init__(self, params, lr, betas, eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                look_ahead = m * beta1 + p.grad * (1 - beta1)
                denom = (v / (1 - beta2**t)).sqrt_().add_(group["eps"])
                p.addcdiv_(look_ahead, denom, value=-group["lr"] / (1 - beta1**t))


def init_optimizer_state(workload: spec.Workload,
                         model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState,
                         hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
    del model_state, rng
    assert isinstance(workload, spec.Workload)
    optimizer = NAdamW(model_params.parameters(), lr=hyperparameters.learning_rate,
                       betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
                       weight_decay=hyperparameters.weight_decay)
    warmup_steps = int(hyperparameters.warmup_factor * workload.step_hint)
    warmup = LinearLR(optimizer, start_factor=1e-10, end_factor=1.0, total_iters=warmup_steps)
    cosine = CosineAnnealingLR(optimizer, T_max=max(workload.step_hint - warmup_steps, 1))
    scheduler = SequentialLR(optimizer, schedulers=[warmup, cosine], milestones=[warmup_steps])
    return {"optimizer": optimizer, "scheduler": scheduler}


def update_params(workload: spec.Workload,
                  current_param_container: spec.ParameterContainer,
                  current_params_types: spec.ParameterTypeTree,
                  model_state: spec.ModelAuxiliaryState,
                  hyperparameters: spec.Hyperparameters,
                  batch: Dict[str, spec.Tensor],
                  loss_type: spec.LossType,
                  optimizer_state: spec.OptimizerState,
                  eval_results: List[Tuple[int, float]],
                  global_step: int,
                  rng: spec.RandomState,
                  train_state: Optional[Dict[str, Any]] = None) -> spec.UpdateReturn:
    del current_params_types, loss_type, eval_results
    assert train_state is not None and "accumulated_submission_time" in train_state
    CALLS.append(("update", global_step))
    current_model = current_param_container
    current_model.train()
    optimizer_state["optimizer"].zero_grad()
    logits_batch, new_model_state = workload.model_fn(
        params=current_model,
        augmented_and_preprocessed_input_batch=batch,
        model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN,
        rng=rng,
        update_batch_norm=True)
    label_smoothing = getattr(hyperparameters, "label_smoothing", 0.0)
    loss_dict = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits_batch,
                                 mask_batch=batch.get("weights"), label_smoothing=label_smoothing)
    loss = loss_dict["summed"] / loss_dict["n_valid_examples"]
    loss.backward()
    if hasattr(hyperparameters, "grad_clip"):
        torch.nn.utils.clip_grad_norm_(current_model.parameters(), \
max_norm=hyperparameters.grad_clip)
    optimizer_state["optimizer"].step()
    optimizer_state["scheduler"].step()
    if global_step < 2:
        if workload.metrics_logger is not None:
            workload.metrics_logger.append_scalar_metrics({"loss": loss.item()}, global_step)
        logging.info("%d) loss = %0.3f", global_step, loss.item())
    return (optimizer_state, current_param_container, new_model_state)


def get_batch_size(workload_name):
    raise ValueError(f"Unsupported workload name: {workload_name}.")


def data_selection(workload: spec.Workload,
                   input_queue: Iterator[Dict[str, spec.Tensor]],
                   optimizer_state: spec.OptimizerState,
                   current_param_container: spec.ParameterContainer,
                   model_state: spec.ModelAuxiliaryState,
                   hyperparameters: spec.Hyperparameters,
                   global_step: int,
                   rng: spec.RandomState) -> Dict[str, spec.Tensor]:
    del workload, optimizer_state, current_param_container, model_state, hyperparameters
    del global_step, rng
    return next(input_queue)
'''

SCHEDULE_FREE = '''
"""Schedule-free AdamW (Defazio et al. 2024) in AlgoPerf's older package name."""

import math
from typing import Dict, Iterator, List, Tuple

import torch

from algorithmic_efficiency import spec
from algorithmic_efficiency.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP = pytorch_setup()[0]
CALLS: List[Tuple[str, int]] = []


class AdamWScheduleFree(torch.optim.Optimizer):
    """Parameters hold y = (1 - b1) z + b1 x while training and x (the average) in eval mode."""

    def __init__(self, params, lr, betas, warmup_steps, eps=1e-8, weight_decay=0.0):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, k=0,
                        warmup_steps=warmup_steps, weight_sum=0.0, lr_max=0.0, train_mode=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def eval(self):
        for group in self.param_groups:
            if group["train_mode"]:
                for p in group["params"]:
                    if "z" in self.state[p]:
                        p.lerp_(self.state[p]["z"], 1 - 1 / group["betas"][0])  # y -> x
                group["train_mode"] = False

    @torch.no_grad()
    def train(self):
        for group in self.param_groups:
            if not group["train_mode"]:
                for p in group["params"]:
                    if "z" in self.state[p]:
                        p.lerp_(self.state[p]["z"], 1 - group["betas"][0])  # x -> y
                group["train_mode"] = True

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            assert group["train_mode"], "step() in eval mode"
            beta1, beta2 = group["betas"]
            k = group["k"]
            lr = group["lr"] * min(1.0, (k + 1) / max(group["warmup_steps"], 1))
            group["lr_max"] = max(lr, group["lr_max"])
            weight = group["lr_max"] ** 2
            group["weight_sum"] += weight
            c = weight / group["weight_sum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["z"] = p.clone()
                    state["exp_avg_sq"] = torch.zeros_like(p)
                z, v = state["z"], state["exp_avg_sq"]
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                g = p.grad / (v / (1 - beta2 ** (k + 1))).sqrt().add_(group["eps"])
                g.add_(p, alpha=group["weight_decay"])
                p.lerp_(z, c).add_(g, alpha=lr * (beta1 * (1 - c) - 1))
                z.sub_(g, alpha=lr)
            group["k"] = k + 1


def init_optimizer_state(workload: spec.Workload, model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState,
                         hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
    optimizer = AdamWScheduleFree(
        model_params.parameters(), lr=hyperparameters.learning_rate,
        betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
        warmup_steps=int(hyperparameters.warmup_factor * workload.step_hint),
        weight_decay=hyperparameters.weight_decay)
    return {"optimizer": optimizer, "max_checked_eval_step": -1}


def update_params(workload: spec.Workload, current_param_container: spec.ParameterContainer,
                  current_params_types: spec.ParameterTypeTree,
                  model_state: spec.ModelAuxiliaryState,
                  hyperparameters: spec.Hyperparameters, batch: Dict[str, spec.Tensor],
                  loss_type: spec.LossType, optimizer_state: spec.OptimizerState,
                  eval_results: List[Tuple[int, float]], global_step: int,
                  rng: spec.RandomState) -> spec.UpdateReturn:
    CALLS.append(("update", global_step))
    optimizer_state["max_checked_eval_step"] = len(eval_results)
    model = current_param_container
    optimizer_state["optimizer"].train()
    model.train()
    optimizer_state["optimizer"].zero_grad()
    logits, new_model_state = workload.model_fn(
        params=model, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True, dropout_rate=0.0)
    loss_dict = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits,
                                 mask_batch=batch.get("weights"))
    (loss_dict["summed"] / loss_dict["n_valid_examples"]).backward()
    optimizer_state["optimizer"].step()
    return (optimizer_state, current_param_container, new_model_state)


def prepare_for_eval(workload: spec.Workload, current_param_container: spec.ParameterContainer,
                     current_params_types: spec.ParameterTypeTree,
                     model_state: spec.ModelAuxiliaryState,
                     hyperparameters: spec.Hyperparameters, loss_type: spec.LossType,
                     optimizer_state: spec.OptimizerState, global_step: int,
                     rng: spec.RandomState) -> spec.UpdateReturn:
    CALLS.append(("prepare", global_step))
    optimizer_state["optimizer"].eval()
    return (optimizer_state, current_param_container, model_state)


def get_batch_size(workload_name):
    return 64


def data_selection(workload: spec.Workload, input_queue: Iterator[Dict[str, spec.Tensor]],
                   optimizer_state: spec.OptimizerState,
                   current_param_container: spec.ParameterContainer,
                   model_state: spec.ModelAuxiliaryState,
                   hyperparameters: spec.Hyperparameters, global_step: int,
                   rng: spec.RandomState) -> Dict[str, spec.Tensor]:
    return next(input_queue)
'''

# AlgoPerf-style search spaces: AlgoPerf's names, AlgoPerf's JSON format.
SEARCH_SPACE = {
    "learning_rate": {"min": 1e-3, "max": 2e-2, "scaling": "log"},
    "one_minus_beta1": {"feasible_points": [0.1]},
    "beta2": {"feasible_points": [0.999]},
    "weight_decay": {"min": 0.0, "max": 0.1},
    "warmup_factor": {"feasible_points": [0.05]},
}
DIGITS_POINT = {
    "learning_rate": 3e-3,
    "one_minus_beta1": 0.1,
    "beta2": 0.999,
    "weight_decay": 0.05,
    "warmup_factor": 0.05,
}
NANOGPT_POINT = {**DIGITS_POINT, "learning_rate": 1e-2}


def _ends_itself(end_at: int) -> str:
    """A minimal SGD submission that ends training itself at step `end_at`."""
    return sgd_source(update=f"if global_step == {end_at}: raise spec.TrainingCompleteError()")


def _submission(root: Path, name: str, source: str, space: dict[str, Any] | None = None) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "submission.py").write_text(source)
    (folder / "search_space.json").write_text(json.dumps(space or SEARCH_SPACE))
    return folder


def _spec(
    folder: Path, data_dir: Path, workload: str, hp: dict[str, Any], max_steps: int
) -> TrialSpec:
    return TrialSpec(
        workload=workload,
        scale="smoke",
        submission=str(folder),
        hparams_json=TrialSpec.canonical_hparams(hp),
        seed=0,
        data_dir=str(data_dir),
        max_steps=max_steps,
        stop_at_target=False,
    )


def _losses(evals: list[dict[str, Any]]) -> list[float]:
    return [e["value"] for e in evals if e["metric"] == "train_loss"]


def _eval_steps(evals: list[dict[str, Any]]) -> list[int]:
    return sorted({e["step"] for e in evals})


# -- whole trials through the runner ---------------------------------------------------------


def test_nadamw_with_warmup_cosine_trains_digits(tmp_path: Path, data_dir: Path) -> None:
    folder = _submission(tmp_path, "nadamw-algoperf", NADAMW)
    submission = load_submission(folder)
    assert submission.level is Level.ALGOPERF
    outcome = run_trial(
        _spec(folder, data_dir, "digits", DIGITS_POINT, max_steps=120), get_workload
    )
    row = outcome.row
    assert row["status"] in (TrialStatus.BUDGET_EXHAUSTED, TrialStatus.TARGET_REACHED), row["error"]
    assert row["steps"] == 120
    losses = _losses(outcome.evals)
    assert len(losses) == 3 and losses[-1] < 0.5 * losses[0]
    assert row["final_metric"] > 0.8  # test accuracy of digits after 120 steps
    assert row["compile_time_s"] > 0  # the optimizer state was snapshot, so the warm-up ran
    # two Adam moments per parameter (the integer step counts are not tensors)
    assert row["optimizer_state_bytes"] == 2 * row["params_bytes"]
    calls = submission.module.CALLS
    assert calls[:2] == [("update", 0), ("update", 0)]  # the warm-up step, then the real one
    assert [step for _, step in calls[1:]] == list(range(120))


def test_schedule_free_prepares_for_every_eval(tmp_path: Path, data_dir: Path) -> None:
    folder = _submission(tmp_path, "schedule-free-algoperf", SCHEDULE_FREE)
    submission = load_submission(folder)
    outcome = run_trial(
        _spec(folder, data_dir, "digits", DIGITS_POINT, max_steps=120), get_workload
    )
    row = outcome.row
    assert row["status"] in (TrialStatus.BUDGET_EXHAUSTED, TrialStatus.TARGET_REACHED), row["error"]
    losses = _losses(outcome.evals)
    assert len(losses) == 3 and losses[-1] < 0.5 * losses[0]
    assert row["final_metric"] > 0.8
    calls = submission.module.CALLS
    prepared = [i for i, call in enumerate(calls) if call[0] == "prepare"]
    assert [calls[i][1] for i in prepared] == _eval_steps(outcome.evals) == [40, 80, 120]
    for i in prepared:  # each right after the last update before its eval, never twice in a row
        assert calls[i - 1] == ("update", calls[i][1] - 1)


def test_nadamw_trains_nanogpt_per_token(tmp_path: Path, data_dir: Path) -> None:
    folder = _submission(tmp_path, "nadamw-algoperf-gpt", NADAMW)
    outcome = run_trial(
        _spec(folder, data_dir, "nanogpt", NANOGPT_POINT, max_steps=40), get_workload
    )
    row = outcome.row
    assert row["status"] in (TrialStatus.BUDGET_EXHAUSTED, TrialStatus.TARGET_REACHED), row["error"]
    losses = _losses(outcome.evals)
    assert len(losses) == 2 and losses[-1] < losses[0] < 5.6  # ln 256 = 5.55 at the start


@pytest.mark.parametrize("end_at", [25, 40])
def test_training_complete_error_ends_the_trial_cleanly(
    tmp_path: Path, data_dir: Path, end_at: int
) -> None:
    folder = _submission(tmp_path, f"ends-at-{end_at}", _ends_itself(end_at))
    outcome = run_trial(
        _spec(folder, data_dir, "digits", DIGITS_POINT, max_steps=100), get_workload
    )
    row = outcome.row
    assert row["status"] == TrialStatus.BUDGET_EXHAUSTED and row["error"] is None
    assert row["steps"] == end_at
    # one final eval where training ended (none twice when an eval was already due there)
    assert _eval_steps(outcome.evals) == sorted({min(40, end_at), end_at})


def test_data_parallel_level3_trial_is_refused(tmp_path: Path, data_dir: Path) -> None:
    submission = load_submission(_submission(tmp_path, "nadamw-dp", NADAMW))
    workload, model = _digits(data_dir)
    trial = TrialContext(model, workload, seed=0, world_size=2, clock=Clock())
    with pytest.raises(ContractError, match="run in one process"):
        _stepper(submission, workload, model, trial)


# -- the stepper: warm-up snapshot, errors ----------------------------------------------------


def _digits(data_dir: Path) -> tuple[Digits, torch.nn.Module]:
    workload = Digits("smoke", data_dir)
    workload.setup(CPU, seed=0)
    return workload, workload.build_model(seed=0)


def _stepper(
    submission: Any, workload: Workload, model: torch.nn.Module, trial: TrialContext | None = None
) -> Any:
    trial = trial or TrialContext(model, workload, seed=0, world_size=1, clock=Clock())
    groups = workload.param_groups(model)
    info = workload.info("cpu")
    return make_stepper(
        submission,
        groups,
        Hyperparameters(DIGITS_POINT),
        info,
        functools.partial(workload.loss, model),
        lambda batch: None,
        trial,
    )


@pytest.mark.parametrize("source", [NADAMW, SCHEDULE_FREE], ids=["nadamw", "schedule-free"])
def test_warmup_snapshot_leaves_no_trace(tmp_path: Path, data_dir: Path, source: str) -> None:
    """A step, restore, and the same steps again give exactly what a fresh stepper gives."""
    submission = load_submission(_submission(tmp_path, "snap", source))

    def run(warm_up: bool) -> tuple[list[float], list[torch.Tensor]]:
        workload, model = _digits(data_dir)
        stepper = _stepper(submission, workload, model)
        if warm_up:
            snapshot, weights = stepper.snapshot(), model.state_dict()
            weights = {k: v.clone() for k, v in weights.items()}
            assert snapshot is not None
            stepper.step(workload.get_batch(0), 0)
            model.load_state_dict(weights)
            stepper.restore(snapshot)
        losses = [float(stepper.step(workload.get_batch(s), s)) for s in range(3)]
        stepper.prepare_for_eval()
        return losses, [p.detach().clone() for p in model.parameters()]

    (losses_a, params_a), (losses_b, params_b) = run(warm_up=False), run(warm_up=True)
    assert losses_a == losses_b
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))


def test_missing_function_is_a_clear_contract_error(tmp_path: Path) -> None:
    source = NADAMW.replace("def init_optimizer_state(", "def _init_optimizer_state(")
    with pytest.raises(ContractError, match=r"level 3.*missing: init_optimizer_state"):
        load_submission(_submission(tmp_path, "no-init", source))


def test_update_params_without_loss_fn_is_a_clear_contract_error(
    tmp_path: Path, data_dir: Path
) -> None:
    source = _ends_itself(-1).replace(
        'loss = workload.loss_fn(batch["targets"], logits)',
        "loss = {'summed': logits.sum(), 'n_valid_examples': 1}",
    )
    outcome = run_trial(
        _spec(
            _submission(tmp_path, "no-loss-fn", source),
            data_dir,
            "digits",
            DIGITS_POINT,
            max_steps=5,
        ),
        get_workload,
    )
    assert outcome.status == TrialStatus.FAILED
    assert "never called workload.loss_fn" in outcome.row["error"]


# -- the workload adapter ---------------------------------------------------------------------


def _adapter(workload: Workload, model: torch.nn.Module) -> AlgoPerfWorkload:
    groups = workload.param_groups(model)
    return AlgoPerfWorkload(workload, model, groups, workload.info("cpu"), shim_spec)


def test_loss_fn_sums_masks_and_smooths(data_dir: Path) -> None:
    adapter = _adapter(*_digits(data_dir))
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 10), torch.randint(10, (6,))
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    out = adapter.loss_fn(labels, logits, mask, label_smoothing=0.1)
    expected = F.cross_entropy(logits, labels, reduction="none", label_smoothing=0.1) * mask
    assert torch.allclose(out["per_example"], expected)
    assert float(out["n_valid_examples"]) == 4.0
    assert torch.allclose(out["summed"], expected.sum())
    unmasked = adapter.loss_fn(labels, logits)
    assert float(unmasked["n_valid_examples"]) == 6.0
    assert torch.allclose(unmasked["summed"] / 6, F.cross_entropy(logits, labels))
    one_hot = adapter.loss_fn(F.one_hot(labels, 10).float(), logits)  # dense labels
    assert torch.allclose(one_hot["per_example"], unmasked["per_example"])


def test_model_fn_and_loss_fn_give_the_workload_loss(data_dir: Path) -> None:
    workload, model = _digits(data_dir)
    adapter = _adapter(workload, model)
    batch = workload.get_batch(0)
    algoperf_batch = workload.algoperf_batch(batch)
    running_mean = model.bn1.running_mean.clone()
    logits, state = adapter.model_fn(
        model, algoperf_batch, None, shim_spec.ForwardPassMode.TRAIN, None, update_batch_norm=False
    )
    assert state is None and logits.requires_grad
    assert torch.equal(model.bn1.running_mean, running_mean)  # frozen statistics
    assert model.bn1.momentum == 0.1  # and the momentum is restored afterwards
    out = adapter.loss_fn(algoperf_batch["targets"], logits)
    assert torch.allclose(out["summed"] / out["n_valid_examples"], workload.loss(model, batch))
    eval_logits, _ = adapter.model_fn(
        model, algoperf_batch, None, shim_spec.ForwardPassMode.EVAL, None, update_batch_norm=False
    )
    assert not eval_logits.requires_grad and not model.training


def test_nanogpt_loss_is_per_token(data_dir: Path) -> None:
    workload = NanoGPT("smoke", data_dir)
    workload.setup(CPU, seed=0)
    model = workload.build_model(seed=0)
    with torch.no_grad():  # the head starts at zero; give the logits some spread
        model.lm_head.weight.normal_(0, 0.02)
    adapter = _adapter(workload, model)
    batch = workload.algoperf_batch(workload.get_batch(0))
    logits, _ = adapter.model_fn(model, batch, None, shim_spec.ForwardPassMode.TRAIN, None, True)
    out = adapter.loss_fn(batch["targets"], logits)
    assert out["per_example"].shape == batch["targets"].shape  # (B, T): one loss per token
    assert float(out["n_valid_examples"]) == batch["targets"].numel()
    mean = out["summed"] / out["n_valid_examples"]
    assert torch.allclose(mean, workload.loss(model, workload.get_batch(0)))
    types = adapter.model_params_types
    assert types["embed.weight"] is shim_spec.ParameterType.EMBEDDING
    assert types["lm_head.weight"] is shim_spec.ParameterType.WEIGHT
    assert adapter.is_output_params("lm_head.weight") and not adapter.is_output_params(
        "embed.weight"
    )
    assert adapter.target_metric_name == "loss"


def test_diffusion_loss_is_mean_squared_error(data_dir: Path) -> None:
    workload = Diffusion("smoke", data_dir)
    workload.setup(CPU, seed=0)
    model = workload.build_model(seed=0)
    adapter = _adapter(workload, model)
    assert adapter.loss_type is shim_spec.LossType.MEAN_SQUARED_ERROR
    raw = workload.get_batch(0)
    batch = workload.algoperf_batch(raw)
    torch.manual_seed(1)  # the same dropout draws in both forward passes
    prediction, _ = adapter.model_fn(
        model, batch, None, shim_spec.ForwardPassMode.TRAIN, None, True
    )
    out = adapter.loss_fn(batch["targets"], prediction)
    assert out["per_example"].shape == (workload.config.batch_size,)
    torch.manual_seed(1)
    assert torch.allclose(out["summed"] / out["n_valid_examples"], workload.loss(model, raw))


def test_param_shapes_and_types_follow_names_and_roles(data_dir: Path) -> None:
    workload, model = _digits(data_dir)
    adapter = _adapter(workload, model)
    names = [name for name, _ in model.named_parameters()]
    assert list(adapter.param_shapes) == list(adapter.model_params_types) == names
    assert adapter.param_shapes["conv1.weight"] == shim_spec.ShapeTuple((16, 1, 3, 3))
    kinds = {name: t.name for name, t in adapter.model_params_types.items()}
    assert kinds == {
        "conv1.weight": "CONV_WEIGHT",
        "bn1.weight": "BATCH_NORM_SCALE",
        "bn1.bias": "BATCH_NORM_BIAS",
        "conv2.weight": "CONV_WEIGHT",
        "bn2.weight": "BATCH_NORM_SCALE",
        "bn2.bias": "BATCH_NORM_BIAS",
        "fc.weight": "WEIGHT",
        "fc.bias": "BIAS",
        "head.weight": "WEIGHT",
        "head.bias": "BIAS",
    }
    info = workload.info("cpu")
    assert adapter.step_hint == info.step_hint and adapter.metrics_logger is None
    assert adapter.loss_type is shim_spec.LossType.SOFTMAX_CROSS_ENTROPY
    assert adapter.target_metric_name == "accuracy"
    result = algoperf_eval_result({"test_accuracy": 0.9, "train_loss": 0.3})
    assert result["validation/accuracy"] == 0.9 and result["train/loss"] == 0.3


# -- the package names ------------------------------------------------------------------------


@pytest.fixture
def fresh_algoperf_names() -> Iterator[None]:
    """Forgets imported `algoperf*` / `algorithmic_efficiency*` modules, and restores them after."""

    def ours(name: str) -> bool:
        return name.split(".")[0] in PACKAGE_NAMES

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in saved:
        del sys.modules[name]
    yield
    for name in [name for name in sys.modules if ours(name)]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_both_package_names_import_the_same_modules(fresh_algoperf_names: None) -> None:
    install_algoperf_names()
    from algoperf import spec as new_spec
    from algoperf.pytorch_utils import pytorch_setup
    from algorithmic_efficiency import random_utils
    from algorithmic_efficiency import spec as old_spec

    assert new_spec is old_spec is shim_spec
    assert (
        importlib.import_module("algorithmic_efficiency.pytorch_utils").pytorch_setup
        is pytorch_setup
    )
    use_ddp, rank, device, _ = pytorch_setup()
    assert (use_ddp, rank) == (False, 0) and isinstance(device, torch.device)
    keys = random_utils.split(random_utils.PRNGKey(0), 3)
    assert keys.shape == (3, 2) and keys.dtype.name == "uint32"
    for alias in (
        "ParameterContainer",
        "ParameterTypeTree",
        "ParameterShapeTree",
        "ParameterKey",
        "ModelAuxiliaryState",
        "Hyperparameters",
        "OptimizerState",
        "RandomState",
        "UpdateReturn",
        "Tensor",
        "Steps",
        "Timing",
        "Workload",
        "ShapeTuple",
    ):
        assert hasattr(new_spec, alias), alias
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("algoperf.workloads")


def test_an_installed_algoperf_is_not_shadowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_algoperf_names: None
) -> None:
    real = tmp_path / "site" / "algoperf"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("IS_REAL = True\n")
    (real / "spec.py").write_text("IS_REAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    install_algoperf_names()
    assert importlib.import_module("algoperf.spec").IS_REAL
    assert importlib.import_module("algorithmic_efficiency.spec") is shim_spec  # still provided
