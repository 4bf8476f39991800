"""The report page in a real browser: headless Chromium driven by Selenium through the system's chromedriver
(Debian: ``apt-get install chromium chromium-driver``; ``pip install selenium``). A page built from a tiny run made
here loads without console errors, shows every image, and every player's audio decodes to its source's duration;
a full-page screenshot is written under the test's tmp_path (its path is printed; ``pytest -s`` shows it)."""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from matplotlib import image as mpimg

from audiolvm.report import build_page, write_report
from tests.test_report import ROOT, make_demo, make_run

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TIMEOUT = 20.0  # seconds for the page's media to load


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not CHROMEDRIVER.is_file():
        return f"{CHROMEDRIVER} is missing (apt-get install chromium-driver, or make system-deps)"
    if not any(shutil.which(name) for name in CHROMIUM):
        return f"no Chromium browser on PATH ({', '.join(CHROMIUM)}; apt-get install chromium, or make system-deps)"
    return None


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """One headless Chromium for the module, logging the page's console."""
    if reason := missing():
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--mute-audio",
                "--window-size=1280,900"):
        options.add_argument(arg)
    options.binary_location = next(path for name in CHROMIUM if (path := shutil.which(name)))
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def open_page(driver: Any, html: Path) -> None:
    """Load ``html`` and wait until every player has loaded its metadata (or failed), at most TIMEOUT."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(html.as_uri())
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && "
        "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error)"))


def players(driver: Any) -> list[list[Any]]:
    """``[file name, readyState, duration, error code]`` of every ``<audio>`` on the open page."""
    return driver.execute_script("return [...document.querySelectorAll('audio')].map(a => [a.dataset.file, "
                                 "a.readyState, a.duration, a.error && a.error.code])")


def assert_sources_duration(shown: list[list[Any]], *folders: Path) -> None:
    """Every player decoded its file (found under ``folders``) to a finite duration within 1% of the file's."""
    for name, ready, duration, error in shown:
        source = next(p for folder in folders for p in folder.rglob(name))
        assert error is None and ready >= 1, (name, ready, error)
        assert duration == pytest.approx(sf.info(str(source)).duration, rel=0.01), name


@pytest.fixture(scope="module")
def page(driver: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page of a tiny two-level run with examples."""
    return write_report(make_run(tmp_path_factory.mktemp("browser") / "run"))


@pytest.fixture
def opened(driver: Any, page: Path) -> Path:
    """The run's page, open in the browser (loaded once, again only after a test opened another page)."""
    if driver.current_url != page.as_uri():
        open_page(driver, page)
    return page


def test_the_page_logs_no_console_errors(driver: Any, opened: Path) -> None:
    errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors


def test_every_image_is_shown(driver: Any, opened: Path) -> None:
    images = driver.execute_script("return [...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
    assert len(images) == 2 * 3  # a spectrogram beside each player
    assert [alt for alt, complete, width in images if not (complete and width > 0)] == []


def test_every_player_decodes_its_source_to_the_same_duration(driver: Any, opened: Path) -> None:
    shown = players(driver)
    assert len(shown) == 2 * 3  # 2 examples: the original and 2 levels
    assert_sources_duration(shown, opened.parent)


def test_every_table_has_the_expected_rows(driver: Any, opened: Path) -> None:
    shown = driver.execute_script(
        "return [...document.querySelectorAll('table')].map(t => t.tBodies[0].rows.length)")
    expected = [len(t.rows) for t in build_page(opened.parent, opened).tables]
    metrics = {row["name"] for row in csv.DictReader((opened.parent / "metrics.csv").open())}
    assert shown == expected and expected == [len(metrics), 2]  # the last value of each metric; the 2 levels' scores


def test_hovering_a_chart_point_names_its_step_and_value(driver: Any, opened: Path) -> None:
    tips = driver.execute_script(
        "return [...document.querySelectorAll('svg circle')].map(c => c.querySelector('title').textContent)")
    assert tips and all(", step " in tip and ": " in tip for tip in tips)
    assert any(tip.startswith("train, step 4: ") for tip in tips)


def test_full_page_screenshot(driver: Any, opened: Path, tmp_path: Path) -> None:
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    png = tmp_path / "report.png"
    png.write_bytes(base64.b64decode(shot["data"]))
    print(f"\nscreenshot of {opened}: {png}")
    pixels = mpimg.imread(io.BytesIO(png.read_bytes()))
    assert pixels.shape[0] >= int(size["height"]) - 1 > 900  # the whole page, taller than the window
    assert float(np.std(pixels[..., :3])) > 0.05  # not a blank page


def test_opus_players_decode_to_the_sources_duration(driver: Any, page: Path) -> None:
    """--audio opus: a smaller page whose players still decode to their sources' durations."""
    opus = write_report(page.parent, page.with_name("opus.html"), audio="opus")
    assert opus.stat().st_size < page.stat().st_size
    open_page(driver, opus)
    shown = players(driver)
    assert len(shown) == 2 * 3
    assert_sources_duration(shown, page.parent)


def test_demo_page_loads_its_players_and_figures(driver: Any, page: Path, tmp_path: Path) -> None:
    """The demo's page (tests/test_report.py's demo folder): examples beside their figures, samples, conversions
    beside the targets' real voices (one from the corpus)."""
    make_demo(tmp_path, page.parent)
    open_page(driver, write_report(tmp_path))
    assert [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
    images = driver.execute_script("return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])")
    assert len(images) >= 2 + 2 and all(shown for _, shown in images)  # examples' spectrograms, samples' spectrograms
    shown = players(driver)
    assert len(shown) == 2 * 3 + 2 + 7 + 3  # examples, samples, conversions (+ voices), unseen (+ reference)
    assert_sources_duration(shown, tmp_path, ROOT / "data")
