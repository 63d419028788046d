"""Screenshot the FiftyOne App serving a fercurate dataset, in headless Debian chromium.

    python tools/screenshot_app.py DATASET OUT.png [--port 5151]

Starts the App server the way ``fercurate launch`` does, waits for the sample grid to
show thumbnails, saves a PNG, and stops the server.
"""

import argparse
import tempfile

from playwright.sync_api import sync_playwright

from fercurate import app

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("out")
    p.add_argument("--port", type=int, default=5171)
    args = p.parse_args()
    import fiftyone as fo
    session = app.start(fo.load_dataset(args.dataset), args.port)
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 860})
            page = ctx.new_page()
            page.goto(app.url_for(args.dataset, args.port), wait_until="domcontentloaded")
            page.wait_for_selector('[data-cy="looker"]', timeout=90_000)
            page.wait_for_timeout(5000)
            dismiss = page.get_by_text("Dismiss")
            if dismiss.count():
                dismiss.first.click()
                page.wait_for_timeout(500)
            page.screenshot(path=args.out)
            ctx.close()
    finally:
        app.stop(session)


if __name__ == "__main__":
    main()
