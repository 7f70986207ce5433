"""`check_page` catches what the report tests rely on it to catch, on hand-written pages."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from matplotlib.figure import Figure

from tests.reports.browser import check_page, is_blank


def _png_figure() -> bytes:
    """A bar chart: coloured areas, so a screenshot holding it is far from one colour."""
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    ax.bar(["adamw", "muon", "lion"], [3.0, 2.0, 2.5], color=["C0", "C1", "C2"])
    ax.set_title("time to target (s)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _page(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "page.html"
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>t</title></head>"
        f"<body>{body}</body></html>"
    )
    return path


def test_good_page_passes(tmp_path: Path) -> None:
    uri = "data:image/png;base64," + base64.b64encode(_png_figure()).decode()
    page = _page(tmp_path, f"<h1>Report</h1><img alt='bars' src='{uri}'><p>done</p>")
    shot = tmp_path / "shot.png"
    check = check_page(page, screenshot_path=shot)
    assert check.images == 1
    assert check.broken_images == []
    assert check.console_errors == []
    assert not check.is_blank
    assert shot.read_bytes() == check.screenshot_png
    assert check.screenshot_png.startswith(b"\x89PNG")


def test_broken_image_and_console_error_are_reported(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        "<h1>Report</h1><img alt='missing figure' src='figures/none.png'>"
        "<script>console.error('x')</script>",
    )
    check = check_page(page)
    assert check.images == 1
    assert check.broken_images == ["missing figure"]
    assert any('"x"' in message for message in check.console_errors), check.console_errors
    assert any("none.png" in message for message in check.console_errors), check.console_errors


def test_blank_page_is_blank(tmp_path: Path) -> None:
    check = check_page(_page(tmp_path, ""))
    assert check.images == 0 and check.console_errors == []
    assert check.is_blank


def test_is_blank_counts_colours() -> None:
    assert not is_blank(_png_figure())
    buffer = io.BytesIO()
    Figure(figsize=(2, 2), dpi=50).savefig(buffer, format="png")
    assert is_blank(buffer.getvalue())
