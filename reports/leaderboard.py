"""The leaderboard: one row per submission, its benchmark score and per-workload costs to target.

Per submission s and workload w (studies k, trials i):

    best[s, w, k]   = the study's selected trial (`reports.scoring.selected_trials`: least time,
                      then steps to target, then best metric, then trial index; null -> inf)
    X[s, w]         = median_k X(best[s, w, k])   for X in time, steps, tokens to target
                      (a best trial that missed the target counts inf)
    peak_mib[s, w]  = median_i peak_bytes / 2**20;   throughput[s, w] = median_i throughput_per_s

plus the benchmark score (`reports.scoring`) and counts of trials by status. Wall-clock columns
compare only within one hardware class (the table holds one); step and token columns compare across.
The table is a flat frame (`<workload>/<quantity>` columns) for CSV; the renderers lay it out as a
summary table plus one small table per workload.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from reports.page import html_start, md_cell, md_row
from reports.scoring import benchmark_scores, select_trials, target_medians

__all__ = ["leaderboard_table", "render_html", "render_markdown"]

SUMMARY_COLUMNS = ("score", "trials", "reached", "diverged", "failed")
WORKLOAD_QUANTITIES = (
    "time_to_target_s",
    "steps_to_target",
    "tokens_to_target",
    "peak_mib",
    "throughput_per_s",
)
_HEADERS = {
    "score": "score",
    "trials": "trials",
    "reached": "reached",
    "diverged": "diverged",
    "failed": "failed",
    "time_to_target_s": "time to target (s)",
    "steps_to_target": "steps to target",
    "tokens_to_target": "tokens to target",
    "peak_mib": "peak memory (MiB)",
    "throughput_per_s": "throughput (/s)",
}
_COUNTS = ("trials", "reached", "diverged", "failed", "steps_to_target", "tokens_to_target")
_STATUS_COUNTS = {"reached": "target_reached", "diverged": "diverged", "failed": "failed"}
_COMPARABILITY = (
    "Wall-clock columns (time to target, throughput) compare only runs on the same hardware class; "
    "steps and tokens to target compare across hardware classes."
)
_LEGEND = "∞: the target was not reached (median over studies); —: not recorded."
_NUMBER = ' class="num"'
_CELL_CLASS = {"submission": ""}  # text columns; all others hold numbers


def leaderboard_table(
    trials: pd.DataFrame,
    *,
    hardware_class: str | None = None,
    ruleset: str | None = None,
    max_tau: float = 4.0,
    num_points: int = 100,
) -> pd.DataFrame:
    """One row per submission (index `submission`), sorted by score descending, then name.

    Args:
      trials: a trials frame (`ResultsStore.read_trials()`).
      hardware_class, ruleset: which trials compare (see `reports.scoring.select_trials`).
      max_tau, num_points: the performance profile's tau grid.

    Returns:
      Columns `score`, `trials`, `reached`, `diverged`, `failed`, then `<workload>/<quantity>`
      for each workload (sorted) and quantity of `WORKLOAD_QUANTITIES`; nan where not recorded.
    """
    trials = select_trials(trials, hardware_class=hardware_class, ruleset=ruleset)
    scores = benchmark_scores(trials, max_tau=max_tau, num_points=num_points)
    table = pd.DataFrame({"score": scores})
    table["trials"] = trials.groupby("submission").size()
    for column, status in _STATUS_COUNTS.items():
        table[column] = (trials["status"] == status).groupby(trials["submission"]).sum()
    per_workload = pd.concat([target_medians(trials), _resource_medians(trials)], axis=1)
    for workload in sorted(trials["workload"].unique()):
        for quantity in WORKLOAD_QUANTITIES:
            column = per_workload[quantity].xs(workload, level="workload")
            table[f"{workload}/{quantity}"] = column.reindex(table.index)
    order = sorted(table.index, key=lambda s: (-table.loc[s, "score"], s))
    return table.reindex(order).rename_axis("submission")


def _resource_medians(trials: pd.DataFrame) -> pd.DataFrame:
    """Median over all trials of peak memory (MiB) and throughput, per (submission, workload)."""
    values = pd.DataFrame(
        {
            "peak_mib": trials["peak_bytes"].astype(float) / 2**20,
            "throughput_per_s": trials["throughput_per_s"].astype(float),
        }
    )
    return values.groupby([trials["submission"], trials["workload"]]).median()


# -- rendering ---------------------------------------------------------------------------------

_Section = tuple[str | None, list[str], list[list[str]]]  # heading, header cells, body cells


def _format(value: Any, quantity: str) -> str:
    """One cell: `—` when missing, `∞` when never reached, else a number in the quantity's unit."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    number = float(value)
    if math.isinf(number):
        return "∞"
    if quantity == "score":
        return f"{number:.4f}"
    if quantity in _COUNTS:
        return f"{number:,.0f}"
    return f"{number:,.1f}"


def _sections(table: pd.DataFrame) -> list[_Section]:
    """The summary table, then one table per workload, as formatted text cells."""
    summary = [
        [str(rank), str(name)] + [_format(row[c], c) for c in SUMMARY_COLUMNS]
        for rank, (name, row) in enumerate(table.iterrows(), start=1)
    ]
    headers = ["rank", "submission"] + [_HEADERS[c] for c in SUMMARY_COLUMNS]
    sections: list[_Section] = [(None, headers, summary)]
    workloads = dict.fromkeys(c.split("/", 1)[0] for c in table.columns if "/" in c)
    for workload in workloads:
        rows = [
            [str(name)] + [_format(row[f"{workload}/{q}"], q) for q in WORKLOAD_QUANTITIES]
            for name, row in table.iterrows()
        ]
        sections.append(
            (workload, ["submission"] + [_HEADERS[q] for q in WORKLOAD_QUANTITIES], rows)
        )
    return sections


def render_markdown(table: pd.DataFrame, title: str) -> str:
    """The leaderboard as GitHub-flavoured Markdown: a summary table, then one table per workload.

    Args:
      table: `leaderboard_table` output.
      title: the page heading.
    """
    lines = [f"# {md_cell(title)}", "", _COMPARABILITY, "", _LEGEND]
    for heading, headers, rows in _sections(table):
        if heading is not None:
            lines += ["", f"## {md_cell(heading)}"]
        align = ["---" if h == "submission" else "---:" for h in headers]
        lines += ["", md_row(headers), md_row(align)] + [md_row(r) for r in rows]
    return "\n".join(lines) + "\n"


def render_html(table: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """The leaderboard as one self-contained HTML page (inline CSS, no scripts or external assets).

    Args:
      table: `leaderboard_table` output.
      title: the page title and heading.
      notes: extra paragraphs shown under the heading (plain text; escaped).
    """
    esc = html.escape
    parts = html_start(title)
    parts += [f'<p class="note">{esc(text)}</p>' for text in (_COMPARABILITY, _LEGEND, *notes)]
    for heading, headers, rows in _sections(table):
        if heading is not None:
            parts.append(f"<h2>{esc(heading)}</h2>")
        parts.append(_html_table(headers, rows))
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    """A table with the submission column left-aligned and the number columns right-aligned."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    lines = ["<table>", f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row in rows:
        cells = (
            f"<td{_CELL_CLASS.get(h, _NUMBER)}>{html.escape(c)}</td>"
            for h, c in zip(headers, row, strict=True)
        )
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return "\n".join([*lines, "</tbody>", "</table>"])
