"""A real headless Chromium (Debian's chromium + chromium-driver) driven through selenium.

Selenium is synchronous, and the service under test runs in the test's own event loop, so
every browser step runs in a worker thread (``asyncio.to_thread``): the bridge keeps serving
audio while the browser waits. Flags: the ones known to work on a closed network (no
background networking, no component updates), as root (``--no-sandbox``), in a fresh
profile.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

REQUIRE_ENV = "CALLBRIDGE_REQUIRE_BROWSER"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)

T = TypeVar("T")


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skip (or fail in CI) when they are not installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        reason = "chromium and chromedriver not found; run scripts/install-test-services.sh"
        if os.environ.get(REQUIRE_ENV) == "1":  # CI: a missing browser is a failure
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
        pytest.skip(reason)
    return chromium, driver


class Browser:
    """One headless Chromium; every method is awaitable and runs the driver off the loop."""

    def __init__(self, profile: Path) -> None:
        chromium, driver = find_browser()
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        self._service = ChromeService(executable_path=driver)
        self._options = options
        self.driver: webdriver.Chrome | None = None

    async def __aenter__(self) -> Browser:
        self.driver = await asyncio.to_thread(
            webdriver.Chrome, service=self._service, options=self._options
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.driver is not None:
            await asyncio.to_thread(self.driver.quit)

    @property
    def d(self) -> webdriver.Chrome:
        assert self.driver is not None
        return self.driver

    async def run(self, step: Callable[[], T]) -> T:
        return await asyncio.to_thread(step)

    async def get(self, url: str) -> None:
        await self.run(lambda: self.d.get(url))

    async def find(self, css: str) -> WebElement:
        return await self.run(lambda: self.d.find_element(By.CSS_SELECTOR, css))

    async def texts(self, css: str) -> list[str]:
        def read() -> list[str]:
            try:
                return [e.text for e in self.d.find_elements(By.CSS_SELECTOR, css)]
            except StaleElementReferenceException:
                return []

        return await self.run(read)

    async def wait_for(
        self, check: Callable[[], Any], timeout: float = 20.0, what: str = "condition"
    ) -> Any:
        """Poll ``check`` (run in a thread) until it returns something truthy."""

        def safe() -> Any:
            try:
                return check()
            except (StaleElementReferenceException, WebDriverException):
                return None

        try:
            async with asyncio.timeout(timeout):
                while True:
                    value = await self.run(safe)
                    if value:
                        return value
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"browser: timed out waiting for {what}") from None

    async def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.run(lambda: self.d.save_screenshot(str(path)))
