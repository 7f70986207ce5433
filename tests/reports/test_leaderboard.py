"""The leaderboard table and its Markdown / HTML renderings, from trials written to a real store."""

from __future__ import annotations

import hashlib
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.results import TRIALS_SCHEMA, ResultsStore
from reports.leaderboard import leaderboard_table, render_html, render_markdown

ODD_NAME = "a|b <i>odd</i> & co"  # must be escaped in Markdown and HTML
MIB = 2**20


def _row(submission: str, workload: str, study: int, index: int, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(TRIALS_SCHEMA.names)
    row.update(
        trial_id=hashlib.sha256(f"{submission}/{workload}/{study}/{index}".encode()).hexdigest()[
            :16
        ],
        submission=submission,
        workload=workload,
        study=study,
        trial_index=index,
        ruleset="external",
        hardware_class="cpu-x",
        git_dirty=False,
    )
    row.update(values)
    return row


def _reached(time_s: float, steps: int, **values: Any) -> dict[str, Any]:
    return dict(status="target_reached", time_to_target_s=time_s, steps_to_target=steps, **values)


@pytest.fixture
def trials(tmp_path: Path) -> pd.DataFrame:
    """fast: best on both workloads; slow: 2x on w1, never reaches w2 (one diverged, one failed)."""
    rows = [
        _row("fast", "w1", 0, 0, **_reached(100.0, 10, peak_bytes=2 * MIB, throughput_per_s=50.0)),
        _row("fast", "w1", 0, 1, **_reached(150.0, 12, peak_bytes=4 * MIB, throughput_per_s=30.0)),
        _row("fast", "w1", 1, 0, **_reached(120.0, 11, peak_bytes=6 * MIB)),
        _row("fast", "w2", 0, 0, **_reached(10.0, 5, tokens_to_target=640, tokens=700)),
        _row(ODD_NAME, "w1", 0, 0, **_reached(200.0, 20)),
        _row(ODD_NAME, "w1", 1, 0, **_reached(240.0, 24)),
        _row(ODD_NAME, "w2", 0, 0, status="diverged", steps=3),
        _row(ODD_NAME, "w2", 0, 1, status="failed", error="Traceback ..."),
    ]
    store = ResultsStore(tmp_path / "results")
    for row in rows:
        assert store.write_trial(row, [])
    return store.read_trials()


def test_table_rows_scores_and_counts(trials: pd.DataFrame) -> None:
    table = leaderboard_table(trials, num_points=4)
    assert list(table.index) == ["fast", ODD_NAME]  # score descending
    assert table.loc["fast", "score"] == pytest.approx(1.0)
    # ODD_NAME: ratio 220/110 = 2 on w1, inf on w2: rho = 0, .5, .5, .5 at tau = 1..4.
    assert table.loc[ODD_NAME, "score"] == pytest.approx(1.25 / 3)
    counts = ["trials", "reached", "diverged", "failed"]
    assert table.loc["fast", counts].tolist() == [4, 4, 0, 0]
    assert table.loc[ODD_NAME, counts].tolist() == [4, 2, 1, 1]


def test_table_per_workload_medians(trials: pd.DataFrame) -> None:
    table = leaderboard_table(trials)
    # best trial per study: 100 s / 10 steps (study 0), 120 s / 11 steps (study 1).
    assert table.loc["fast", "w1/time_to_target_s"] == 110.0
    assert table.loc["fast", "w1/steps_to_target"] == 10.5
    assert table.loc["fast", "w1/peak_mib"] == 4.0  # median over all trials of 2, 4, 6 MiB
    assert table.loc["fast", "w1/throughput_per_s"] == 40.0
    assert table.loc["fast", "w2/tokens_to_target"] == 640.0
    assert math.isnan(table.loc["fast", "w1/tokens_to_target"])  # tokens not counted: missing
    assert math.isinf(table.loc[ODD_NAME, "w2/time_to_target_s"])  # missed: inf
    assert math.isinf(table.loc[ODD_NAME, "w2/steps_to_target"])


def test_markdown_lists_every_submission(trials: pd.DataFrame) -> None:
    text = render_markdown(leaderboard_table(trials), "Suite <cpu-x>")
    assert text.startswith("# Suite &lt;cpu-x&gt;\n")
    assert "| 1 | fast | 1.0000 |" in text
    assert r"a\|b &lt;i&gt;odd&lt;/i&gt; & co" in text and ODD_NAME not in text
    assert "## w1" in text and "## w2" in text
    assert "—" in text and "∞" in text
    assert "same hardware class" in text


class _Checker(HTMLParser):
    """Fails on mismatched tags; collects text and attribute names."""

    VOID = {"meta", "br", "hr", "img", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attrs: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs |= {name for name, _ in attrs}
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_well_formed_and_self_contained(trials: pd.DataFrame) -> None:
    page = render_html(leaderboard_table(trials), "Suite <cpu-x>", notes=["seeds: 3 & more"])
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    text = "".join(checker.text)
    assert "fast" in text and ODD_NAME in text and "Suite <cpu-x>" in text
    assert "seeds: 3 & more" in text and "same hardware class" in text
    assert "i" not in checker.tags and "script" not in checker.tags  # names escaped, no scripts
    assert not checker.attrs & {"src", "href"}  # no external assets
    assert page.index("fast") < page.index("a|b")  # sorted by score
