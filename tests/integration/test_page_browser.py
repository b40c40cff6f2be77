"""The gateway's web page in a real browser: headless Debian chromium (Selenium, its
chromedriver) against the chart's gateway with uploads on, the real API server, MinIO and
the operator with the fake runner (seed 78 writes a real one-second MP4). Sign in, a
refused file and a refused upload shown on the page, three files uploaded, the status
following the run to Succeeded, the video playing (duration > 0), a second request
cancelled from "my requests". Screenshots of each state go to $MUSEPOSE_SCREENSHOTS (else
the test's temporary directory)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.harness.processes import eventually
from tests.integration import test_gateway, test_gateway_uploads
from tests.integration.test_gateway import Gateway

pytestmark = pytest.mark.cluster
gateway = test_gateway.gateway
operator = test_gateway.operator
uploading = test_gateway_uploads.uploading


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1000,1400", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("MUSEPOSE_SCREENSHOTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


def _media(folder: Path) -> dict[str, Path]:
    """A real PNG, MP4 and WAV, small; and a WAV over the gateway's 64 KiB bound."""
    quiet = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]
    files = {"image": folder / "dancer.png", "video": folder / "dance.mp4",
             "audio": folder / "song.wav", "large": folder / "long-song.wav",
             "text": folder / "notes.txt"}
    subprocess.run([*quiet, "testsrc=size=64x64", "-frames:v", "1", str(files["image"])],
                   check=True)
    subprocess.run([*quiet, "testsrc=size=64x64:rate=8:duration=1", "-pix_fmt", "yuv420p",
                    str(files["video"])], check=True)
    subprocess.run([*quiet, "sine=duration=0.5:sample_rate=8000", str(files["audio"])],
                   check=True)
    subprocess.run([*quiet, "sine=duration=5:sample_rate=16000", str(files["large"])],
                   check=True)
    files["text"].write_text("not an image")
    return files


def _text(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def _wait_text(driver: webdriver.Chrome, element_id: str, wanted: str, timeout: float
               ) -> str:
    try:
        return eventually(f"{element_id} to say {wanted!r}",
                          lambda: wanted in (t := _text(driver, element_id)) and t, timeout)
    except AssertionError:
        raise AssertionError(f"{element_id}: {_text(driver, element_id)!r}; refusal: "
                             f"{_text(driver, 'refusal')!r}") from None


def _choose(driver: webdriver.Chrome, field: str, path: Path) -> None:
    driver.find_element(By.ID, field).send_keys(str(path))


def _seed(driver: webdriver.Chrome, seed: int) -> None:
    box = driver.find_element(By.ID, "seed")
    box.clear()
    box.send_keys(str(seed))


def test_a_person_makes_a_video_in_the_browser(
    browser: webdriver.Chrome, uploading: Gateway, operator: Any, minio: Any, shots: Path,
    tmp_path: Path
) -> None:
    media = _media(tmp_path)
    browser.get(uploading.url + "/")
    browser.save_screenshot(str(shots / "1-sign-in.png"))
    browser.find_element(By.ID, "token").send_keys(uploading.tokens["alice"])
    browser.find_element(By.ID, "namespace").send_keys(uploading.ns_a)
    browser.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    eventually("the signed-in page", lambda: browser.find_element(By.ID, "work").is_displayed(),
               30)
    assert browser.execute_script("return document.cookie") == ""  # the token is no cookie

    # A file the runner cannot read is refused on the page before any upload.
    _choose(browser, "reference_image", media["text"])
    _wait_text(browser, "refusal", "not accepted", 10)
    browser.save_screenshot(str(shots / "2-refused-type.png"))
    _choose(browser, "reference_image", media["image"])
    _choose(browser, "reference_video", media["video"])
    # An upload over the gateway's bound: the gateway's refusal, shown as text.
    _choose(browser, "audio_file", media["large"])
    browser.find_element(By.TAG_NAME, "summary").click()
    _seed(browser, 78)
    browser.find_element(By.ID, "submit").click()
    refused = _wait_text(browser, "refusal", "size:", 30)
    assert "65536" in refused
    browser.save_screenshot(str(shots / "3-refused-size.png"))

    _choose(browser, "audio_file", media["audio"])
    browser.find_element(By.ID, "submit").click()
    _wait_text(browser, "status", "Succeeded", 180)
    eventually("the video element playable", lambda: browser.execute_script(
        "const v = document.getElementById('player');"
        "return v.readyState >= 1 && v.duration > 0;"), 60)
    duration = browser.execute_script("return document.getElementById('player').duration")
    assert 0.5 < duration < 2, duration
    link = browser.find_element(By.ID, "download").get_attribute("href")
    assert link and link.startswith(f"http://{minio.endpoint}/videos/{uploading.ns_a}/")
    poster = browser.find_element(By.ID, "player").get_attribute("poster")
    assert poster and poster.startswith(link.split(".mp4?")[0] + ".png?")
    browser.save_screenshot(str(shots / "4-succeeded.png"))

    # A second request, cancelled from "my requests".
    _seed(browser, 990)
    browser.find_element(By.ID, "submit").click()
    _wait_text(browser, "status", "Running", 120)
    eventually("its cancel button", lambda: browser.find_elements(
        By.CSS_SELECTOR, "#mine button[aria-label^='Cancel ']"), 30)[0].click()
    _wait_text(browser, "status", "Cancelled", 90)
    browser.save_screenshot(str(shots / "5-cancelled.png"))
