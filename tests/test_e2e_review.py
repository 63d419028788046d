"""End to end in a real browser: review in the App, freeze from the palette, export from the CLI.

Starts the App on a small dataset with planted fixes, drives headless Debian chromium
with Playwright: opens the "fercurate review" panel from the "+" button, accepts one
fix and rejects another with the panel's buttons, freezes a version from the backtick
operator palette, then exports that version with ``fercurate export``. Screenshots of
each step go to ``$FERCURATE_TEST_ARTIFACTS`` (else the test's tmp dir).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fercurate import app, queues, schema, versions
from tests.factories import findings_dataset

pytestmark = pytest.mark.app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PANEL = "review_panel"
VERSION = "clean_v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("FERCURATE_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def served(tmp_path, unique_name):
    """A planted dataset and the App serving it (with the repo's plugin) on a free port."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium) to drive the App")
    ds, roles = findings_dataset(tmp_path / "fer", unique_name)
    port = free_port()
    session = app.start(ds, port)
    try:
        yield ds, roles, app.url_for(ds.name, port)
    finally:
        app.stop(session)
        ds.delete()


def wait_until(check, timeout: float = 20.0, what: str = "condition"):
    """Poll the database until ``check()`` is truthy (decisions land before the panel re-renders)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def relabel_status(ds, sid: str) -> str:
    ds.reload()
    return ds[sid][schema.fix_field(schema.RELABEL)][schema.FIX_STATUS]


def panel_button(page, label: str):
    """A button of the review panel by its label (the icon's name comes first in its text)."""
    return page.get_by_role("button", name=re.compile(rf"{label}$"))


def test_review_in_the_app_then_freeze_from_the_palette_and_export(served, artifacts):
    from playwright.sync_api import expect, sync_playwright

    ds, roles, url = served
    shots = []

    def shot(page, name):
        path = artifacts / f"e2e-review-{name}.png"
        page.screenshot(path=str(path))
        shots.append(path)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        try:
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector('[data-cy="looker"]', timeout=90_000)
            dismiss = page.get_by_text("Dismiss")
            if dismiss.count():
                dismiss.first.click()

            # open the review panel from the "+" button
            page.click('[data-cy="new-panel-btn"]')
            page.click(f'[data-cy="new-panel-option-{PANEL}"]')
            expect(page.locator(f'[data-cy="panel-tab-{PANEL}"]')).to_be_visible(timeout=30_000)
            # the label-issue queue opens on its strongest case: the lowest label quality
            expect(page.get_by_text(roles["issue0"]).first).to_be_visible(timeout=30_000)
            shot(page, "1-panel")

            clicked = time.perf_counter()
            panel_button(page, "Accept").click()
            # the panel re-renders on the next pending sample of the queue
            expect(page.get_by_text(roles["issue1"]).first).to_be_visible(timeout=20_000)
            latency = time.perf_counter() - clicked   # recorded, not asserted: bench/review_browser.py measures it
            wait_until(lambda: relabel_status(ds, roles["issue0"]) == schema.ACCEPTED, what="the accept")
            expect(page.get_by_text("accepted 1 fix(es) of").first).to_be_visible()
            expect(page.get_by_text(re.compile(r"label issues +2 +1 +0\b")).first).to_be_visible()
            shot(page, "2-accepted")

            panel_button(page, "Reject").click()
            wait_until(lambda: relabel_status(ds, roles["issue1"]) == schema.REJECTED, what="the reject")
            expect(page.get_by_text("rejected 1 fix(es) of").first).to_be_visible(timeout=20_000)
            # the queue counters: pending / accepted / rejected
            expect(page.get_by_text(re.compile(r"label issues +1 +1 +1\b")).first).to_be_visible()
            shot(page, "3-rejected")

            # the rest of the queue by score: the form shows what it will change before it runs
            panel_button(page, "Decide by score…").click()
            prompt = page.locator('[data-cy="operators-prompt-modal"]')
            expect(prompt.get_by_text("This will accept 1 of the 1 pending 'label issues' fixes (score ≤ 0.300)")
                   ).to_be_visible(timeout=20_000)
            shot(page, "3b-by-score-form")
            prompt.get_by_role("button", name="Execute").click()
            wait_until(lambda: relabel_status(ds, roles["issue2"]) == schema.ACCEPTED, what="the by-score accept")

            # freeze a version from the backtick operator palette
            page.keyboard.press("Escape")
            page.locator('[data-cy="fo-grid"]').hover()
            page.keyboard.press("`")
            page.locator('[data-cy="operators-browser-search"]').wait_for(timeout=15_000)
            page.keyboard.type("freeze version")
            page.keyboard.press("Enter")
            prompt = page.locator('[data-cy="operators-prompt-modal"]')
            expect(prompt.get_by_text("fix(es) are still pending")).to_be_visible(timeout=20_000)
            expect(prompt.locator("input").first).to_have_value(VERSION)
            shot(page, "4-freeze-form")
            prompt.get_by_role("button", name="Execute").click()
            wait_until(lambda: VERSION in {v["name"] for v in versions.list_versions(ds)}, what="the freeze")
            shot(page, "5-frozen")
        except Exception:
            shot(page, "failure")
            raise
        finally:
            browser.close()
            print("screenshots:", *shots, sep="\n  ")
    (artifacts / "e2e-review-latency.json").write_text(json.dumps({"accept_to_next_face_s": round(latency, 3)}))

    ds.reload()
    assert relabel_status(ds, roles["issue0"]) == schema.ACCEPTED
    assert relabel_status(ds, roles["issue1"]) == schema.REJECTED
    assert relabel_status(ds, roles["issue2"]) == schema.ACCEPTED
    accepted = ds[roles["issue0"]]
    assert accepted[schema.CURATED_LABEL].label == accepted[schema.SUGGESTED_LABEL].label
    assert queues.counts(ds)[schema.RELABEL] == {schema.PENDING: 0, schema.ACCEPTED: 2, schema.REJECTED: 1}

    out = subprocess.run([sys.executable, "-m", "fercurate.cli", "export", "--view", VERSION,
                          "--dataset", ds.name], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = json.loads(lines[0])
    assert header["version"] == VERSION and header["dataset"] == ds.name
    kept = len(ds) - sum(bool(d) for d in ds.values(schema.CURATED_DROP))
    assert len(lines) == 1 + kept
    exported = {json.loads(line)["id"]: json.loads(line) for line in lines[1:]}
    assert exported[roles["issue0"]]["label"] == accepted[schema.SUGGESTED_LABEL].label
    assert exported[roles["issue1"]]["label"] == ds[roles["issue1"]][schema.GROUND_TRUTH].label
