"""Screenshot the "fercurate review" panel beside a review queue, in headless Debian chromium.

    python tools/screenshot_review.py DATASET OUT.png [--queue relabel] [--port 5172]

Proposes the dataset's fixes (idempotent: decisions are kept), starts the App the way
``fercurate launch`` does on the queue's saved view, hides the landmark overlays, opens
the review panel from the "+" button, picks the queue, waits for the sample's images,
saves a PNG and stops the App.
Used for the README's picture (docs/review-panel.png).
"""

import argparse
import re

from browser import app_page
from playwright.sync_api import expect

from fercurate import app, fixes, schema
from fercurate.schema import QUEUE_LABELS


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("out")
    p.add_argument("--queue", default=schema.RELABEL, choices=schema.FIX_KINDS)
    p.add_argument("--port", type=int, default=5172)
    p.add_argument("--hide", nargs="*", default=[schema.FACE_LANDMARKS, schema.FACE_DETECTION],
                   help="label fields whose overlays to switch off in the grid")
    p.add_argument("--width", type=int, default=1600)
    p.add_argument("--height", type=int, default=1000)
    args = p.parse_args()
    import fiftyone as fo
    ds = fo.load_dataset(args.dataset)
    fixes.propose(ds)
    session = app.start(ds, args.port)
    session.view = ds.load_saved_view(schema.QUEUE_VIEWS[args.queue])  # the server's state, so it sticks
    try:
        with app_page(app.url_for(args.dataset, args.port), args.width, args.height) as page:
            for field in args.hide:
                page.locator(f'[data-cy="checkbox-{field}"]').first.click()
            page.click('[data-cy="new-panel-btn"]')
            page.click('[data-cy="new-panel-option-review_panel"]')
            names = "|".join(QUEUE_LABELS.values())
            queue = page.get_by_role("combobox").filter(has_text=re.compile(f"^({names})$")).first
            expect(queue).to_be_visible(timeout=30_000)
            if queue.inner_text() != QUEUE_LABELS[args.queue]:
                queue.click()
                page.get_by_role("option", name=QUEUE_LABELS[args.queue], exact=True).click()
            expect(page.get_by_role("button", name=re.compile("Accept$"))).to_be_visible(timeout=30_000)
            page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
            page.wait_for_timeout(3000)  # thumbnails fade in
            page.screenshot(path=args.out)
    finally:
        app.stop(session)


if __name__ == "__main__":
    main()
