"""Contact sheet of what a curation signal found, to look at real faces rather than numbers.

    python tools/contact_sheet.py fer2013 --queue issues   --out docs/label-issues-top.png
    python tools/contact_sheet.py fer2013 --queue relabels --out docs/relabels-top.png

``issues``: the lowest label quality first, captioned "given -> proposed fix quality";
``relabels``: the most confident relabel proposals, "given -> target confidence".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fercurate import dataset, schema  # first: sets FiftyOne's environment

TILE, COLUMNS = 112, 8


def sheet(paths: list[str], captions: list[str], out: Path) -> None:
    rows = max(1, (len(paths) + COLUMNS - 1) // COLUMNS)
    im = Image.new("RGB", (COLUMNS * (TILE + 8), rows * (TILE + 28)), "white")
    draw = ImageDraw.Draw(im)
    for n, (path, caption) in enumerate(zip(paths, captions)):
        x, y = (n % COLUMNS) * (TILE + 8), (n // COLUMNS) * (TILE + 28)
        with Image.open(path) as face:
            im.paste(face.convert("RGB").resize((TILE, TILE)), (x + 4, y + 2))
        draw.text((x + 4, y + TILE + 4), caption, fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    im.save(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--queue", choices=("issues", "relabels"), default="issues")
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    ds = dataset.load(args.dataset)
    paths, given, quality, relabel = ds.values(["filepath", f"{schema.GROUND_TRUTH}.label", schema.LABEL_QUALITY,
                                                schema.fix_field(schema.RELABEL)])
    relabel = [r.to_dict() if r is not None else None for r in relabel]
    if args.queue == "issues":
        chosen = [int(i) for i in np.argsort(np.array(quality, dtype=float))[:args.count]]
        captions = [f"{given[i]}->{(relabel[i] or {}).get(schema.FIX_TARGET) or 'drop'} {quality[i]:.2f}"
                    for i in chosen]
    else:
        chosen = sorted((i for i, r in enumerate(relabel) if r), key=lambda i: relabel[i][schema.FIX_SCORE])
        chosen = chosen[:args.count]
        captions = [f"{given[i]}->{relabel[i][schema.FIX_TARGET]} {relabel[i][schema.FIX_CONFIDENCE]:.2f}"
                    for i in chosen]
    sheet([paths[i] for i in chosen], captions, args.out)
    print(f"wrote {args.out} ({len(chosen)} faces)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
