"""A report on disk: one self-contained HTML page, the same in Markdown, and every table as CSV.

A report is a title, provenance lines and a list of sections; a section holds text, figures (PNG
bytes drawn by `reports.figures`) and tables (pandas frames, already formatted for reading).

    OUT/report.html        figures embedded as data: URIs, inline CSS, no scripts, no remote assets
    OUT/report.md          the same sections; figures linked from OUT/figures/
    OUT/figures/<id>.png   every figure
    OUT/tables/<id>.csv    every table, unformatted (the numbers as measured)
    OUT/.optbench-output   the mark naming every file above (`harness.outputs`)

The folder is built under a temporary name beside OUT and renamed into place, so a reader (or a
failed run) never sees half a report; a previous report at OUT is replaced only once the new one is
complete, and only when it is optbench's own (`harness.outputs.check_output`): a folder holding
anything else is refused before anything is written.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.outputs import REPORT_FOLDER, check_output, replace_folder

__all__ = [
    "CSS",
    "Figure",
    "Report",
    "Section",
    "Table",
    "format_cell",
    "html_start",
    "md_cell",
    "md_row",
    "write_report",
]

CSS = """  # every page optbench writes (reports, leaderboards)
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, p.note, p.caption { color: #555; } ul.caveats li { color: #8a4b00; }
"""


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure: a file-safe id, a caption, and the PNG bytes."""

    ident: str
    caption: str
    png: bytes


@dataclass(frozen=True, slots=True)
class Table:
    """One table: `frame` is written to CSV as is and shown with `format_cell` per cell."""

    ident: str
    caption: str
    frame: pd.DataFrame


@dataclass(slots=True)
class Section:
    """A heading, paragraphs, bullet caveats, figures and tables, shown in that order."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Report:
    """Where a written report's files are."""

    html: Path
    markdown: Path
    csv: list[Path]
    figures: list[Path]


def format_cell(value: Any) -> str:
    """A table cell for reading: `—` missing, `∞` infinite, 4 significant digits,
    ints with commas."""
    if value is None or value is pd.NA:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value == int(value) and abs(value) < 1e9:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


def write_report(
    out_dir: str | os.PathLike[str],
    title: str,
    provenance: Sequence[str],
    sections: Sequence[Section],
    *,
    flag: str = "--out",
) -> Report:
    """Writes the report's folder atomically (see the module docstring) and returns its files.

    Raises:
      UsageError: `out_dir` may not be replaced (named as `flag` in the message).
    """
    out = Path(out_dir)
    _check_idents(sections)
    check_output(out, REPORT_FOLDER, flag)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        (staging / "figures").mkdir()
        (staging / "tables").mkdir()
        for section in sections:
            for fig in section.figures:
                (staging / "figures" / f"{fig.ident}.png").write_bytes(fig.png)
            for table in section.tables:
                table.frame.to_csv(staging / "tables" / f"{table.ident}.csv")
        (staging / "report.html").write_text(_html(title, provenance, sections))
        (staging / "report.md").write_text(_markdown(title, provenance, sections))
        os.chmod(staging, 0o755)
        replace_folder(staging, out, REPORT_FOLDER, flag)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Report(
        html=out / "report.html",
        markdown=out / "report.md",
        csv=sorted((out / "tables").glob("*.csv")),
        figures=sorted((out / "figures").glob("*.png")),
    )


def _check_idents(sections: Sequence[Section]) -> None:
    """Figure ids (figures/ID.png) and table ids (tables/ID.csv) are file-safe and
    unique per kind."""
    for kind in ("figures", "tables"):
        seen: set[str] = set()
        for section in sections:
            items: list[Figure] | list[Table] = getattr(section, kind)
            for ident in (item.ident for item in items):
                if not re.fullmatch(r"[A-Za-z0-9_.@-]+", ident) or ident in seen:
                    raise ValueError(f"{kind[:-1]} id {ident!r} is not file-safe or not unique")
                seen.add(ident)


# -- HTML ----------------------------------------------------------------------------------------


def html_start(title: str) -> list[str]:
    """The first lines of every optbench page: doctype, head (title, the inline CSS), heading."""
    esc = html.escape
    return [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
    ]


def _html(title: str, provenance: Sequence[str], sections: Sequence[Section]) -> str:
    esc = html.escape
    parts = html_start(title)
    parts += [f'<p class="note">{esc(line)}</p>' for line in provenance]
    for section in sections:
        parts.append(f"<h2>{esc(section.title)}</h2>")
        parts += [f"<p>{esc(p)}</p>" for p in section.paragraphs]
        if section.caveats:
            items = "".join(f"<li>{esc(c)}</li>" for c in section.caveats)
            parts.append(f'<ul class="caveats">{items}</ul>')
        for fig in section.figures:
            data = base64.b64encode(fig.png).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{esc(fig.ident)}">'
                f"<figcaption>{esc(fig.caption)}</figcaption></figure>"
            )
        for table in section.tables:
            parts.append(f'<p class="caption">{esc(table.caption)}</p>')
            parts.append(_html_table(table.frame))
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _html_table(frame: pd.DataFrame) -> str:
    header_cells = _header(frame)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header_cells)
    lines = ["<table>", f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for cells, numeric in _rows(frame):
        tds = (
            f"<td{' class=num' if n else ''}>{html.escape(c)}</td>"
            for c, n in zip(cells, numeric, strict=True)
        )
        lines.append(f"<tr>{''.join(tds)}</tr>")
    return "\n".join([*lines, "</tbody>", "</table>"])


def _header(frame: pd.DataFrame) -> list[str]:
    index_names = [str(n) if n is not None else "" for n in frame.index.names]
    return index_names + [str(c) for c in frame.columns]


def _rows(frame: pd.DataFrame) -> list[tuple[list[str], list[bool]]]:
    """Formatted cells of each row (index first) and whether each cell is a number."""
    rows = []
    for key, row in frame.iterrows():
        keys = list(key) if isinstance(key, tuple) else [key]
        values = keys + list(row.to_numpy())
        values = [v.item() if hasattr(v, "item") else v for v in values]
        numeric = [isinstance(v, int | float) and not isinstance(v, bool) for v in values]
        rows.append(([format_cell(v) for v in values], numeric))
    return rows


# -- Markdown ------------------------------------------------------------------------------------


def _markdown(title: str, provenance: Sequence[str], sections: Sequence[Section]) -> str:
    lines = [f"# {_md_text(title)}", ""] + [f"{_md_text(p)}  " for p in provenance]
    for section in sections:
        lines += ["", f"## {_md_text(section.title)}", ""]
        for paragraph in section.paragraphs:
            lines += [_md_text(paragraph), ""]
        lines += [f"- **caveat:** {_md_text(c)}" for c in section.caveats]
        if section.caveats:
            lines.append("")
        for fig in section.figures:
            lines += [
                f"![{fig.ident}](figures/{fig.ident}.png)",
                "",
                f"*{_md_text(fig.caption)}*",
                "",
            ]
        for table in section.tables:
            lines += [f"*{_md_text(table.caption)}* ([CSV](tables/{table.ident}.csv))", ""]
            lines += _md_table(table.frame) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _md_table(frame: pd.DataFrame) -> list[str]:
    rows = _rows(frame)
    header = _header(frame)
    numeric_cols = [any(r[1][i] for r in rows) for i in range(len(header))]
    align = ["---:" if n else "---" for n in numeric_cols]
    return [md_row(header), md_row(align)] + [md_row(c) for c, _ in rows]


def _md_text(text: str) -> str:
    """Text safe in Markdown: no raw HTML, no line breaks."""
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipes, raw HTML or line breaks."""
    return _md_text(text.replace("\\", "\\\\").replace("|", "\\|"))


def md_row(cells: Sequence[str]) -> str:
    """One Markdown table row of `cells`, each made safe (`md_cell`)."""
    return "| " + " | ".join(md_cell(c) for c in cells) + " |"
