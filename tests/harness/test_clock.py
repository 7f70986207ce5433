"""The clock on an accelerator synchronizes only where a reading is needed, and accounts the same
seconds as a clock that synchronizes at every boundary.

A fake time source (advanced by the test) and a counting `sync` stand in for the device.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.clock import Clock
from harness.runner import run_trial
from harness.submission import load_submission
from harness.trial import TrialSpec
from workloads import get_workload


class FakeDevice:
    def __init__(self) -> None:
        self.t = 0.0
        self.syncs = 0

    def now(self) -> float:
        return self.t

    def sync(self) -> None:
        self.syncs += 1


def _train(clock: Clock, device: FakeDevice, steps: int, step_s: float, gap_s: float) -> None:
    for _ in range(steps):
        with clock.timed():
            device.t += step_s
        device.t += gap_s  # the loop's host bookkeeping between steps


@pytest.mark.parametrize("lazy", [False, True])
def test_both_clocks_account_the_same_training_and_eval_seconds(lazy: bool) -> None:
    device = FakeDevice()
    clock = Clock(sync=device.sync, now=device.now, lazy=lazy)
    _train(clock, device, steps=5, step_s=1.0, gap_s=0.0)
    with clock.evaluating():
        device.t += 7.0
    _train(clock, device, steps=3, step_s=1.0, gap_s=0.0)
    with clock.compiling():
        device.t += 2.0
    assert clock.train_seconds() == 8.0
    assert (clock.eval_s, clock.compile_s) == (7.0, 2.0)
    # Per boundary: 2 reads x (8 steps + eval + compile). Lazily: each span's start, and the
    # settle and the two reads of the eval and of the compile region.
    expected = {False: 2 * 10, True: 1 + 1 + 2 + 1 + 1 + 2}
    assert device.syncs == expected[lazy]


def test_a_lazy_clock_does_not_synchronize_between_steps() -> None:
    device = FakeDevice()
    clock = Clock(sync=device.sync, now=device.now, lazy=True)
    _train(clock, device, steps=100, step_s=0.01, gap_s=0.0)
    assert device.syncs == 1  # the span's start only
    assert clock.train_s == 0.0  # not settled yet
    assert clock.train_seconds() == pytest.approx(1.0)
    assert device.syncs == 2


def test_the_time_budget_is_checked_on_the_host_clock_until_it_may_be_spent() -> None:
    device = FakeDevice()
    clock = Clock(sync=device.sync, now=device.now, lazy=True)
    _train(clock, device, steps=3, step_s=1.0, gap_s=0.0)
    assert not clock.past(10.0) and device.syncs == 1  # 3 s on the host: no sync needed
    _train(clock, device, steps=8, step_s=1.0, gap_s=0.0)
    assert clock.past(10.0) and device.syncs == 2  # 11 s: settled, exact
    assert clock.train_s == 11.0


def test_a_reading_inside_a_step_keeps_the_rest_of_the_step_in_training() -> None:
    device = FakeDevice()
    clock = Clock(sync=device.sync, now=device.now, lazy=True)
    with clock.timed():
        device.t += 1.0
        assert clock.train_seconds() == 1.0  # as a level-3 submission's train_state reads it
        device.t += 2.0
    assert clock.train_seconds() == 3.0


def test_a_trial_on_a_lazy_clock_synchronizes_at_evals_not_steps(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = []
    lazy = classmethod(lambda cls, device: cls(sync=lambda: syncs.append(1), lazy=True))
    point = load_submission("adamw").search_space.center()
    spec = TrialSpec(
        workload="digits",
        scale="smoke",
        submission="adamw",
        hparams_json=TrialSpec.canonical_hparams(point),
        seed=0,
        data_dir=str(data_dir),
        max_steps=60,
        stop_at_target=False,
    )
    eager = run_trial(spec, get_workload)
    monkeypatch.setattr(Clock, "for_device", lazy)
    outcome = run_trial(spec, get_workload)
    evals = len({e["eval_index"] for e in outcome.evals})
    assert outcome.row["steps"] == 60 and evals >= 2
    # a compile region, each eval's settle and region and its span's new start, the last settle
    assert len(syncs) <= 2 + 4 * evals + 1 < 60
    assert outcome.row["final_metric"] == eager.row["final_metric"]  # the same training
    assert 0 < outcome.row["train_time_s"] < outcome.row["wall_time_s"]
