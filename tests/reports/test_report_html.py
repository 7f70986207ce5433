"""Every report kind, built from the synthetic store, renders in headless Chromium as a reader
needs: each figure loads, no script or resource errors, something on screen, nothing fetched
from outside."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from reports.report import build_report
from tests.reports.browser import check_page
from tests.reports.synthetic import REFERENCE, SUBMISSIONS, write_synthetic_store

# Each kind with the options a user would pass for the synthetic store.
KINDS: dict[str, dict[str, Any]] = {
    "fixed-model": {"scale": "smoke"},  # nanogpt@smoke and digits@smoke
    "fixed-resource": {},
    "pareto": {"workload": "nanogpt"},
    "scaling": {"workload": "nanogpt", "scale": "smoke"},  # the smoke-xs .. smoke-l ladder
}

_CSS_REMOTE = re.compile(r"""(?:url\(\s*["']?|@import\s+["']?)\s*(?:https?:)?//""", re.IGNORECASE)


class _Resources(HTMLParser):
    """Collects every resource a page would load: attribute URLs (links to read excepted)
    and CSS."""

    URL_ATTRS = {"src", "srcset", "href", "poster", "data", "action", "background"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.img_sources: list[str] = []
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "style" and value:
                self.css.append(value)
            if name in self.URL_ATTRS and value and not (tag == "a" and name == "href"):
                self.urls.append(value.strip())
        if tag == "img":
            self.img_sources.append(dict(attrs).get("src") or "")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css.append(data)


@pytest.fixture(scope="module")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_store(root)
    return root


@pytest.mark.parametrize("kind", list(KINDS))
def test_report_page_renders_self_contained(kind: str, results_root: Path, tmp_path: Path) -> None:
    report = build_report(
        kind, results_root, tmp_path / kind, reference=REFERENCE, n_boot=200, **KINDS[kind]
    )
    page = report.html.read_text()
    declared = page.count("<img")
    assert declared >= 1 and declared == len(report.figures)
    assert report.markdown.is_file() and report.csv

    resources = _Resources()
    resources.feed(page)
    resources.close()
    remote = [u for u in resources.urls if re.match(r"(?:https?:)?//", u, re.IGNORECASE)]
    remote += [c for c in resources.css if _CSS_REMOTE.search(c)]
    assert remote == [], f"{kind}: the page loads from outside itself"
    assert len(resources.img_sources) == declared
    assert all(s.startswith("data:image/png;base64,") for s in resources.img_sources)
    assert all(name in page for name in SUBMISSIONS)

    check = check_page(report.html, screenshot_path=tmp_path / f"{kind}.png")
    assert check.images >= declared
    assert check.broken_images == []
    assert check.console_errors == []
    assert not check.is_blank
