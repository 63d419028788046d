"""Contact sheet of every image the usability signal flags, and the counts behind it.

    python bench/usability_sheet.py DATASET [--limit 256]

Writes ``bench/results/usability_sheet.png`` (flagged images, strongest first, each
captioned with its score and reasons: N = no face, G = graphic, T = tiny face) and
``bench/results/usability_sheet.json`` (counts per reason and per split, the sheet's
sample ids). Look at it: the signal is judged by what it flags on real faces.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

RESULTS = Path(__file__).resolve().parent / "results"
CELL = 72
COLS = 16
CODES = {"no_face": "N", "graphic": "G", "tiny_face": "T"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("--limit", type=int, default=256, help="most images on the sheet (default 256)")
    ap.add_argument("--out", type=Path, default=RESULTS / "usability_sheet.png")
    args = ap.parse_args(argv)

    import fiftyone as fo
    import fercurate  # noqa: F401  (points FiftyOne at fercurate's database)
    from fercurate import dataset as fdataset, schema
    from fercurate.errors import FercurateError
    try:
        ds = fdataset.load(args.dataset)
    except FercurateError as e:
        sys.exit(str(e))
    if not ds.has_sample_field(schema.IS_UNUSABLE):
        sys.exit(f"dataset '{ds.name}' has no '{schema.IS_UNUSABLE}'; run 'fercurate compute {ds.name} usability'")
    flagged = ds.match(fo.ViewField(schema.IS_UNUSABLE) == True).sort_by(schema.USABILITY)  # noqa: E712
    ids, paths, scores, reasons, splits = flagged.values(
        ["id", "filepath", schema.USABILITY, schema.USABILITY_REASONS, schema.SPLIT])
    shown = min(len(ids), args.limit)
    rows = max(1, (shown + COLS - 1) // COLS)
    sheet = Image.new("L", (COLS * CELL, rows * (CELL + 12)), 96)
    draw = ImageDraw.Draw(sheet)
    for k in range(shown):
        x, y = (k % COLS) * CELL, (k // COLS) * (CELL + 12)
        with Image.open(paths[k]) as im:
            sheet.paste(im.convert("L").resize((CELL - 2, CELL - 2)), (x + 1, y + 1))
        draw.text((x + 2, y + CELL), f"{scores[k]:.2f} {''.join(CODES[r] for r in reasons[k])}", fill=255)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    result = {
        "benchmark": "usability_sheet", "dataset": ds.name,
        "command": "python bench/usability_sheet.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "samples": len(ds), "flagged": len(ids), "shown": shown, "sheet": str(args.out.name),
        "by_reason": {r: sum(r in x for x in reasons) for r in CODES},
        "by_reasons": {"+".join(sorted(set(x))): sum(sorted(set(y)) == sorted(set(x)) for y in reasons)
                       for x in {tuple(r) for r in reasons}},
        "by_split": {s: splits.count(s) for s in sorted(set(splits))},
        "params": (ds.info.get(schema.INFO_SIGNALS, {}).get("usability") or {}).get("params"),
        "ids": ids[:shown],
    }
    (args.out.with_suffix(".json")).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("flagged", "by_reason", "by_reasons", "by_split")}))


if __name__ == "__main__":
    main()
