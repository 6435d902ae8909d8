"""Screenshot of the dream page on a run, for the README.

    python scripts/dream_screenshot.py RUN_DIR OUT.png [--seed 0] [--steps 12]

Serves RUN_DIR as ``python -m dreamer.dream`` does, starts from a fresh reset,
lets the actor drive for ``--steps`` imagined steps in headless chromium
(Debian's chromium and chromium-driver, installed by ``scripts/setup.sh
--test``), and saves the page.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from dreamer.dream import DreamServer, load_session  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    session, info = load_session(args.run_dir, "cpu")
    server = DreamServer(("127.0.0.1", 0), session, info)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        host, port = server.server_address[:2]
        browser.get(f"http://{host}:{port}/")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        seed = browser.find_element(By.ID, "seed")
        seed.clear()
        seed.send_keys(str(args.seed))
        browser.find_element(By.ID, "start-reset").click()
        wait.until(lambda b: b.find_element(By.ID, "reality").text == "environment")
        start = int(browser.find_element(By.ID, "t").text)
        browser.find_element(By.ID, "policy-drives").click()
        wait.until(lambda b: int(b.find_element(By.ID, "t").text) >= start + args.steps)
        browser.find_element(By.ID, "policy-drives").click()
        browser.save_screenshot(args.out)
        print(f"wrote {args.out}")
    finally:
        browser.quit()
        server.shutdown()
        server.close_session()


if __name__ == "__main__":
    main()
