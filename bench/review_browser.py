"""Benchmark: from a click on Accept / Reject in the review panel to the next face on screen.

Drives headless Debian chromium (Playwright, no browser download) against the App serving
dataset NAME: opens the "fercurate review" panel on the label-issue queue, then clicks
Accept and Reject in turn ``--decisions`` times, timing each in the page, from the click
until the panel shows the next pending sample's id (a MutationObserver: no polling delay). Every decision it
makes is undone afterwards, so the dataset's pending fixes are as they were. Then one
"Decide by score…" form is opened, to time how long the App takes to show the
count it will change (not executed).

    python bench/review_browser.py NAME [--decisions 20] [--port 5151]

Writes bench/results/review_browser.json (median, p90 and max seconds; target 1 s).
Run it on a full dataset (e.g. after ``python bench/review.py NAME --plant``), alone on
the machine: timings include the App's own rendering on these 2 cores.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import sys
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PANEL = "review_panel"
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 1.0

#: in the page: click the panel button labelled ``label``, resolve with the milliseconds
#: until the page's text holds ``text`` (a MutationObserver, so no polling delay is added)
CLICK_UNTIL_SHOWN = """([label, text]) => new Promise((resolve, reject) => {
  const button = [...document.querySelectorAll('button')].find(b => b.textContent.trim().endsWith(label));
  if (!button) { reject(new Error('no button ' + label)); return; }
  const t0 = performance.now();
  const seen = () => document.body.textContent.includes(text);
  const obs = new MutationObserver(() => { if (seen()) { obs.disconnect(); resolve(performance.now() - t0); } });
  obs.observe(document.body, {subtree: true, childList: true, characterData: true});
  setTimeout(() => { obs.disconnect(); reject(new Error('timed out waiting for ' + text)); }, 30000);
  button.click();
})"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("--decisions", type=int, default=20, help="timed clicks (alternating accept / reject)")
    ap.add_argument("--port", type=int, default=0, help="App port (default: a free one)")
    ap.add_argument("--out", type=Path, default=RESULTS / "review_browser.json")
    args = ap.parse_args(argv)
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} not found: apt-get install chromium")

    from playwright.sync_api import expect, sync_playwright

    from fercurate import app, dataset, fixes, queues, schema
    from fercurate.errors import FercurateError
    try:
        ds = dataset.load(args.name)
    except FercurateError as e:
        sys.exit(str(e))
    first = queues.pending_ids(ds, schema.RELABEL, args.decisions + 2)
    if len(first) < args.decisions + 1:
        sys.exit(f"dataset '{ds.name}' has {len(first)} pending relabel fixes; need {args.decisions + 1}")
    port = args.port or free_port()
    session = app.start(ds, port)
    decided: list[str] = []
    clicks: list[float] = []
    form_s = None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.goto(app.url_for(ds.name, port), wait_until="domcontentloaded")
            page.wait_for_selector('[data-cy="looker"]', timeout=120_000)
            dismiss = page.get_by_text("Dismiss")
            if dismiss.count():
                dismiss.first.click()
            page.click('[data-cy="new-panel-btn"]')
            page.click(f'[data-cy="new-panel-option-{PANEL}"]')
            expect(page.get_by_text(first[0]).first).to_be_visible(timeout=60_000)
            for k in range(args.decisions):
                current = queues.next_pending(ds, schema.RELABEL)
                upcoming = queues.pending_ids(ds, schema.RELABEL, 2)
                following = [i for i in upcoming if i != current][0]
                label = "Accept" if k % 2 == 0 else "Reject"
                clicks.append(page.evaluate(CLICK_UNTIL_SHOWN, [label, following]) / 1000)
                decided.append(current)
            # the by-score form: time until it shows the count it will change
            button = page.get_by_role("button", name=re.compile(r"Decide by score…$"))
            t = time.perf_counter()
            button.click()
            expect(page.get_by_text(re.compile(r"This will accept \d+ of the \d+ pending")).first).to_be_visible(
                timeout=60_000)
            form_s = time.perf_counter() - t
            browser.close()
    finally:
        app.stop(session)
        if decided:
            fixes.undo(ds, decided, kinds=[schema.RELABEL], curator="bench")

    result = {
        "benchmark": "review_browser", "dataset": ds.name, "samples": len(ds),
        "command": "python bench/review_browser.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pending_fixes": {k: v[schema.PENDING] for k, v in queues.counts(ds).items()},
        "decision_to_next_face_s": {
            "median": round(statistics.median(clicks), 3),
            "p90": round(sorted(clicks)[int(0.9 * (len(clicks) - 1))], 3),
            "max": round(max(clicks), 3), "runs": len(clicks), "each": [round(c, 3) for c in clicks]},
        "by_score_form_count_shown_s": None if form_s is None else round(form_s, 3),
        "target_s": TARGET_S,
        "browser": "headless Debian chromium via Playwright, same machine as the App (2 cores)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("decision_to_next_face_s", "by_score_form_count_shown_s")}))


if __name__ == "__main__":
    main()
