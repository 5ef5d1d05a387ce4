"""The /demo chat page, end to end in a real headless Chromium against a local stack."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.localstack import ROOT, LocalStack
from tests.helpers import TEST_TOKEN, needs_tools

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", ROOT / "test-artifacts"))

needs_chromium = needs_tools(
    "chromium",
    "chromedriver",
    reason="needs the Debian packages chromium and chromium-driver (.ci/run installs them)",
)


def test_demo_page_and_assets_are_public(embedded_stack: LocalStack) -> None:
    page = httpx.get(embedded_stack.base_url + "/demo")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/demo/demo.js"' in page.text
    script = httpx.get(embedded_stack.base_url + "/demo/demo.js")
    assert script.status_code == 200 and "renderWhatsApp" in script.text
    assert httpx.get(embedded_stack.base_url + "/demo/secrets.py").status_code == 404
    assert httpx.get(embedded_stack.base_url + "/demo/../config.py").status_code == 404


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=900,700",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@needs_chromium
def test_chat_in_a_real_browser(embedded_stack: LocalStack, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(embedded_stack.base_url + "/demo")
    browser.find_element(By.ID, "token").send_keys(TEST_TOKEN)
    browser.find_element(By.ID, "phone").send_keys("5521999990001")

    def say(text: str, replies: int) -> Any:
        box = browser.find_element(By.ID, "message")
        box.send_keys(text)
        browser.find_element(By.ID, "send").click()
        WebDriverWait(browser, 30).until(
            lambda d: (
                len(d.find_elements(By.CSS_SELECTOR, "#history .bubble.agent")) >= replies
                or d.find_elements(By.CSS_SELECTOR, "#history .bubble.error")
            )
        )
        assert not browser.find_elements(By.CSS_SELECTOR, "#history .bubble.error")
        return browser.find_elements(By.CSS_SELECTOR, "#history .bubble.agent")[-1]

    first = say("Olá, demo!", 1)
    assert first.find_element(By.CSS_SELECTOR, ".text").text == "Você disse: Olá, demo!"
    reply = say("**negrito**, _itálico_, ~~riscado~~ e `código`", 2)
    text = reply.find_element(By.CSS_SELECTOR, ".text")
    assert text.find_element(By.TAG_NAME, "strong").text == "negrito"
    assert text.find_element(By.TAG_NAME, "em").text == "itálico"
    assert text.find_element(By.TAG_NAME, "s").text == "riscado"
    assert text.find_element(By.TAG_NAME, "code").text == "código"
    assert "*" not in text.text and "~" not in text.text

    bubbles = browser.find_elements(By.CSS_SELECTOR, "#history .bubble")
    assert [b.get_attribute("class").split()[-1] for b in bubbles] == ["user", "agent", "user", "agent"]
    assert (
        bubbles[2].find_element(By.CSS_SELECTOR, ".text").text.startswith("**negrito**")
    )  # user text as typed

    # Hostile agent text stays text: the renderer escapes before formatting.
    rendered = browser.execute_script("return renderWhatsApp('<img src=x onerror=alert(1)> *b*')")
    assert rendered == "&lt;img src=x onerror=alert(1)&gt; <strong>b</strong>"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "demo.png"))
    if os.environ.get("UPDATE_DEMO_SCREENSHOT"):
        browser.save_screenshot(str(ROOT / "docs" / "demo.png"))


@needs_chromium
def test_wrong_token_is_reported_in_the_page(embedded_stack: LocalStack, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(embedded_stack.base_url + "/demo")
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "phone").send_keys("5521999990002")
    browser.find_element(By.ID, "message").send_keys("oi")
    browser.find_element(By.ID, "send").click()
    error = WebDriverWait(browser, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#history .bubble.error")
    )
    assert "Invalid or missing authentication token" in error[0].text
