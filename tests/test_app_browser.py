"""The web UI in a real browser: ``streamlit run`` on a free localhost port, driven by
headless Debian Chromium through chromedriver (selenium; no browser download).

Uses the real default model (SmolLM2-135M): highlighted evidence needs values that are in
the text, which random tiny models do not write. Set MATEXTRACT_SCREENSHOT=docs/screenshot.png
to refresh the README's screenshot; otherwise it goes to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from app.web import limits
from app.cli.serve import streamlit_command

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SAMPLES = ("doping_abstract.txt", "general_abstract.md", "mof_abstract.html")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1500,1400")

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("Debian chromium and chromium-driver are not installed "
                "(apt-get install chromium chromium-driver)", allow_module_level=True)
pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
pytest.importorskip("streamlit", reason="streamlit is not installed (pip install -e '.[app]')")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(default_model_dir, tmp_path_factory):
    """The app as 'matextract app' starts it, on a free port; its log is shown on failure."""
    folder = tmp_path_factory.mktemp("app-server")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           limits.ENV_EVAL_DIR: str(folder / "no-eval-results"),
           limits.ENV_CORRECTIONS: str(folder / "corrections")}
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(streamlit_command(port=port, max_upload_mb=5),
                               stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read() == b"ok":
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"streamlit did not start:\n{(folder / 'server.log').read_text()}")
        time.sleep(0.5)
    yield url, folder
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _clickable(driver, xpath: str, timeout: float = 60):
    return WebDriverWait(driver, timeout).until(ec.element_to_be_clickable((By.XPATH, xpath)))


def _present(driver, xpath: str, timeout: float = 60):
    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.XPATH, xpath)))


def _button(label: str) -> str:
    return f"//button[.//p[text()='{label}']]"


def test_extract_samples_cancel_and_see_highlighted_evidence(server, browser, tmp_path):
    url, folder = server
    driver = browser
    driver.get(url)
    _clickable(driver, _button("Extract"))

    # A corrupt upload: one clear message, nothing else happens.
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 truncated")
    driver.find_element(By.CSS_SELECTOR, "[data-testid='stFileUploader'] input[type=file]"
                        ).send_keys(str(broken))
    _present(driver, "//*[contains(text(), 'broken.pdf')]")
    _clickable(driver, _button("Extract")).click()
    _present(driver, "//*[@data-testid='stAlert']//*[contains(., "
                     "'broken.pdf: corrupt or truncated PDF')]")

    # Three samples, one attempt each; cancel once the first is done.
    _clickable(driver, "//label[@data-testid='stRadioOption'][.//p[text()='Sample documents']]"
               ).click()
    chooser = _clickable(driver, "//div[@data-testid='stMultiSelect']//input")
    for name in SAMPLES[1:]:
        chooser.click()
        chooser.send_keys(name, Keys.ENTER)
        _present(driver, f"//*[@data-testid='stMultiSelect']//*[text()='{name}']")
    chooser.send_keys(Keys.ESCAPE)
    options = _clickable(driver, "//details[.//p[text()='Pipeline options']]/summary")
    options.click()
    attempts = _clickable(driver, "//input[@aria-label='Reflexion attempts']")
    attempts.send_keys(Keys.CONTROL, "a")
    attempts.send_keys("1", Keys.ENTER)
    WebDriverWait(driver, 30).until(lambda d: attempts.get_attribute("value") == "1")
    options.click()
    _clickable(driver, _button("Extract")).click()
    _present(driver, f"//*[@data-testid='stExpander']//*[contains(text(), "
                     f"'{SAMPLES[0]}: 1 record(s)')]", timeout=240)
    _clickable(driver, _button("Cancel"), timeout=10).click()
    notice = _present(driver, "//*[contains(text(), 'Cancelled after')]", timeout=240).text
    done = int(re.search(r"Cancelled after (\d) of 3", notice).group(1))
    assert 1 <= done < 3, notice

    # The first record's values are highlighted where they were found.
    marks = WebDriverWait(driver, 60).until(lambda d: d.find_elements(
        By.CSS_SELECTOR, "[data-testid='stHtml'] mark.mx-mark[data-path^='records[0].']"))
    text = (limits.SAMPLES_DIR / SAMPLES[0]).read_text(encoding="utf-8")
    for mark in marks:
        assert mark.text and mark.text in text, mark.text
        assert "mx-focus" in mark.get_attribute("class")
        # the title names every value the marked text supports, the mark's own among them
        covering = [part.split(" = ")[0] for part in mark.get_attribute("title").split("; ")]
        assert mark.get_attribute("data-path") in covering
    table = driver.find_element(By.CSS_SELECTOR, "[data-testid='stDataFrame']")
    assert table.is_displayed()

    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", driver.find_element(
        By.XPATH, "//*[@data-testid='stAlert'][contains(., 'Cancelled after')]"))
    time.sleep(1)  # let the scroll and the fonts settle
    shot = tmp_path / "screenshot.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    if os.environ.get("MATEXTRACT_SCREENSHOT"):
        target = Path(os.environ["MATEXTRACT_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)

    # A click on the second row of the table shows that document and its spans.
    row_height = 35  # the table's header and rows (canvas: clicked by position)
    ActionChains(driver).move_to_element_with_offset(
        table, -table.size["width"] // 2 + 15,
        -table.size["height"] // 2 + row_height + row_height + row_height // 2).click().perform()
    _present(driver, f"//*[contains(text(), 'Source: {SAMPLES[1]}')]", timeout=30)
