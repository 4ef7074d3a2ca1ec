"""Drives alertpub's status page in headless Chromium (Debian's chromium, chromium-driver and
python3-selenium), as tests/e2e/status_page.rs asks: loads the page against a live server, gives
it the bearer token, sends a test notification to a target, replays a dead letter, and takes a
screenshot. Prints one JSON line of what it saw; exits non-zero on anything unexpected."""

import argparse
import json
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
    driver.set_page_load_timeout(30)
    wait = WebDriverWait(driver, 20)
    seen = {}
    try:
        driver.get(args.url)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "true")
        seen["title"] = driver.title
        seen["targets"] = len(driver.find_elements(By.CSS_SELECTOR, "#targets tbody tr"))

        token = driver.find_element(By.ID, "token")
        token.send_keys(args.token)
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", token)

        row = f'#targets tbody tr[data-target="{args.target}"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, row))
        driver.find_element(By.CSS_SELECTOR, row + " button.test").click()
        wait.until(lambda d: "delivered to " + args.target in d.find_element(By.ID, "notice").text)
        seen["test_notice"] = driver.find_element(By.ID, "notice").text

        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#dlq tbody tr"))
        before = len(driver.find_elements(By.CSS_SELECTOR, "#dlq tbody tr"))
        seen["dlq_before"] = before
        driver.find_element(By.CSS_SELECTOR, "#dlq tbody tr button.replay").click()
        wait.until(lambda d: "replayed" in d.find_element(By.ID, "notice").text)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#dlq tbody tr")) < before)
        seen["dlq_after"] = len(driver.find_elements(By.CSS_SELECTOR, "#dlq tbody tr"))
        seen["deliveries"] = len(driver.find_elements(By.CSS_SELECTOR, "#deliveries tbody tr"))
        driver.save_screenshot(args.screenshot)
    except Exception as error:  # report what was seen, then fail
        seen["error"] = repr(error)
        try:
            seen["notice"] = driver.find_element(By.ID, "notice").text
        except Exception:
            pass
        print(json.dumps(seen))
        driver.quit()
        sys.exit(1)
    driver.quit()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
