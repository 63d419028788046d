"""Screenshot the FiftyOne App serving a fercurate dataset, in headless Debian chromium.

    python tools/screenshot_app.py DATASET OUT.png [--port 5151]

Starts the App server the way ``fercurate launch`` does, waits for the sample grid to
show thumbnails, saves a PNG, and stops the server.
"""

import argparse

from browser import app_page

from fercurate import app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("out")
    p.add_argument("--port", type=int, default=5171)
    args = p.parse_args()
    import fiftyone as fo
    session = app.start(fo.load_dataset(args.dataset), args.port)
    try:
        with app_page(app.url_for(args.dataset, args.port), 1400, 860) as page:
            page.wait_for_timeout(5000)  # thumbnails fade in
            page.screenshot(path=args.out)
    finally:
        app.stop(session)


if __name__ == "__main__":
    main()
