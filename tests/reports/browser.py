"""Opens a local HTML page in headless Chromium and reports what a reader would see broken.

Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`; `make test`
installs them when it runs as root: tests/with-services.sh) are driven through selenium with the
driver's path given, so selenium-manager never downloads a browser or driver. The browser runs with
its background networking off (this machine has no network) and a fresh profile per page; nothing
outside the page's own file is fetched.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 2000)
BLANK_FRACTION = 0.995  # a screenshot whose commonest colour covers this much shows nothing
LOAD_TIMEOUT_S = 60

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

# An <img> is broken when it has not finished loading or decoded to nothing.
_BROKEN_IMAGES_JS = """
return Array.from(document.images)
    .filter(img => !img.complete || img.naturalWidth === 0)
    .map(img => img.alt || (img.getAttribute('src') || '').slice(0, 80));
"""


@dataclass(frozen=True, slots=True)
class PageCheck:
    """What headless Chromium saw on one page.

    Attributes:
      images: how many <img> elements the page has.
      broken_images: each broken image's alt text (or the first 80 characters of its src).
      console_errors: the browser log's SEVERE messages (script errors, failed resource loads).
      screenshot_png: the window (WINDOW pixels) as PNG bytes.
      is_blank: nearly every screenshot pixel (BLANK_FRACTION) is one colour.
    """

    images: int
    broken_images: list[str]
    console_errors: list[str]
    screenshot_png: bytes
    is_blank: bool


def check_page(html_path: Path, screenshot_path: Path | None = None) -> PageCheck:
    """Loads `html_path` (file://) in headless Chromium, waits until it is complete, and checks it.

    Args:
      html_path: the page; a relative path is taken from the working directory.
      screenshot_path: where to also write the screenshot (for a person to look at), if given.

    Skips the calling test (a failure under CI=true, see tests/conftest.py) when Chromium or its
    driver is not installed.
    """
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.is_file():
            pytest.skip(
                f"{binary} is missing: the browser test needs Debian's chromium and "
                "chromium-driver (`apt-get install chromium chromium-driver`; "
                "make test does as root)"
            )
    with tempfile.TemporaryDirectory(
        prefix="optbench-chromium-", ignore_cleanup_errors=True
    ) as profile:
        driver = webdriver.Chrome(
            service=Service(str(CHROMEDRIVER)), options=_options(Path(profile))
        )
        try:
            driver.set_page_load_timeout(LOAD_TIMEOUT_S)
            driver.get(Path(html_path).resolve().as_uri())
            WebDriverWait(driver, LOAD_TIMEOUT_S).until(
                lambda d: d.execute_script("return document.readyState") == "complete"
            )
            images = int(driver.execute_script("return document.images.length"))
            broken = [str(name) for name in driver.execute_script(_BROKEN_IMAGES_JS)]
            errors = [
                str(e["message"]) for e in driver.get_log("browser") if e["level"] == "SEVERE"
            ]
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
    if screenshot_path is not None:
        Path(screenshot_path).write_bytes(png)
    return PageCheck(images, broken, errors, png, is_blank(png))


def is_blank(png: bytes) -> bool:
    """True when one colour covers at least BLANK_FRACTION of the image's pixels."""
    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    rgb = np.round(np.asarray(pixels)[..., :3] * 255).astype(np.int64).reshape(-1, 3)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    _, counts = np.unique(packed, return_counts=True)
    return bool(counts.max() >= BLANK_FRACTION * packed.size)


def _options(profile: Path) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in _FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options
