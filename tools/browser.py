"""Headless Debian chromium on a FiftyOne App page, shared by the screenshot tools.

Never a downloaded browser: playwright drives ``/usr/bin/chromium`` (apt-get install chromium).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def app_page(url: str, width: int, height: int) -> Iterator[Page]:
    """A page showing the App's sample grid (promotional pop-up dismissed), in a fresh profile."""
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                    args=CHROMIUM_ARGS, viewport={"width": width, "height": height})
        try:
            page = ctx.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector('[data-cy="looker"]', timeout=90_000)
            dismiss = page.get_by_text("Dismiss")
            if dismiss.count():
                dismiss.first.click()
            yield page
        finally:
            ctx.close()
