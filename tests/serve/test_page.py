"""The page at `/` of `elmo serve`, in a real headless browser (Chromium through Selenium): pick
the model, type two texts, run, read the table. Slow: needs Debian's chromium and chromium-driver
(`apt-get install chromium chromium-driver`) and `pip install selenium`; skipped without them."""

import shutil

import pytest

from conftest import REPO
from helpers import ServeProcess, cli

SAMPLES = REPO / "data" / "samples" / "sentiment"


@pytest.mark.slow
def test_the_page_runs_a_model_in_a_headless_browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    driver_path, browser = shutil.which("chromedriver"), shutil.which("chromium")
    if not (driver_path and browser):
        pytest.skip("no chromium / chromedriver on this machine")
    p = cli("-q", "finetune", "--task", "classify", "--model", "tfidf", "--train", SAMPLES / "train.tsv",
            "--dev", SAMPLES / "dev.tsv", "--out", tmp_path / "sentiment", cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    server = ServeProcess(tmp_path / "sentiment", "--max-chars", "40", cwd=tmp_path)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.port}/")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
        driver.find_element(By.ID, "texts").send_keys("The plot is superb .\nThe acting is dull .")
        driver.find_element(By.ID, "run").click()
        rows = WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results tbody tr"))
        cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
        assert [c[1] for c in cells] == ["The plot is superb .", "The acting is dull ."]
        assert all(c[2].split()[0] in ("negative", "neutral", "positive") for c in cells), cells
        driver.find_element(By.ID, "texts").clear()
        driver.find_element(By.ID, "texts").send_keys("a text longer than the forty characters allowed")
        driver.find_element(By.ID, "run").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "error").text)
        assert "over the bound of 40 (--max-chars)" in driver.find_element(By.ID, "error").text
    finally:
        driver.quit()
        server.stop()
