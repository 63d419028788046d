"""FER2013 as the original ``fer2013.csv``: columns ``emotion,pixels,Usage``.

Each row is 48x48 = 2304 space-separated grey values, ``emotion`` is 0-6 in the order
of :data:`fercurate.schema.FER2013_CSV_CLASSES` and ``Usage`` is Training / PublicTest /
PrivateTest. FiftyOne needs files, so every row is written once as a PNG into
``$FERCURATE_HOME/cache/fer2013csv-<content hash>/``; a re-run over the same csv reuses
them, and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from fercurate import config, schema
from fercurate.errors import SourceError
from fercurate.sources.base import Record, SourceScan, require_records

LAYOUT = "fer2013_csv"
SIDE = 48
REQUIRED_COLUMNS = ("emotion", "pixels", "Usage")
_COMPLETE = ".complete"


def looks_like(path: Path) -> bool:
    return path.suffix.lower() == ".csv" or (path.is_dir() and (path / "fer2013.csv").is_file())


def content_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parse_pixels(text: str, where: str) -> np.ndarray:
    try:
        values = np.array(text.split(), dtype=np.int32)
    except ValueError:
        raise SourceError(f"{where}: 'pixels' holds a non-integer value; each pixel must be 0-255") from None
    if values.size != SIDE * SIDE:
        raise SourceError(
            f"{where}: {values.size} pixels, expected {SIDE * SIDE} (48x48); fix or delete the row"
        )
    if values.min() < 0 or values.max() > 255:
        raise SourceError(f"{where}: a pixel is outside 0-255; fix or delete the row")
    return values.astype(np.uint8).reshape(SIDE, SIDE)


def _save_png(pixels: np.ndarray, path: Path) -> None:
    # write-then-rename: a kill mid-write never leaves a truncated PNG behind
    tmp = path.with_suffix(".tmp")
    Image.fromarray(pixels, mode="L").save(tmp, format="PNG")
    os.replace(tmp, path)


def read(path: Path) -> SourceScan:
    path = Path(path)
    if path.is_dir():
        path = path / "fer2013.csv"
    if not path.exists():
        raise SourceError(f"{path}: does not exist; pass the path of fer2013.csv with --source PATH")
    path = path.resolve()
    digest = content_hash(path)
    out_dir = config.cache_dir() / f"fer2013csv-{digest[:16]}"
    cached = (out_dir / _COMPLETE).is_file()
    records: list[Record] = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise SourceError(f"{path}: the file is empty; expected a header emotion,pixels,Usage")
        header = [h.strip() for h in header]
        if sorted(header) != sorted(REQUIRED_COLUMNS):
            raise SourceError(
                f"{path}: header is '{','.join(header)}', expected 'emotion,pixels,Usage' "
                "(the original FER2013 csv); fix the first line"
            )
        col = {name: header.index(name) for name in REQUIRED_COLUMNS}
        for d in schema.FER2013_USAGE_TO_SPLIT:
            (out_dir / d).mkdir(parents=True, exist_ok=True)
        for row_index, row in enumerate(tqdm(reader, desc=f"reading {path.name}", unit=" rows", leave=False)):
            where = f"{path} line {row_index + 2}"
            if len(row) != len(header):
                raise SourceError(f"{where}: {len(row)} fields, expected {len(header)}; fix or delete the row")
            try:
                emotion = int(row[col["emotion"]])
            except ValueError:
                raise SourceError(f"{where}: emotion '{row[col['emotion']]}' is not an integer 0-6") from None
            if not 0 <= emotion < len(schema.FER2013_CSV_CLASSES):
                raise SourceError(f"{where}: emotion {emotion} is outside 0-6; fix or delete the row")
            usage = row[col["Usage"]].strip()
            if usage not in schema.FER2013_USAGE_TO_SPLIT:
                raise SourceError(
                    f"{where}: Usage '{usage}' is not one of Training, PublicTest, PrivateTest"
                )
            png = out_dir / usage / f"{row_index:05d}.png"
            if not cached:
                pixels = _parse_pixels(row[col["pixels"]], where)
                if not png.is_file():
                    _save_png(pixels, png)
            records.append(Record(
                str(png), schema.FER2013_CSV_CLASSES[emotion], schema.FER2013_USAGE_TO_SPLIT[usage],
                f"row:{row_index}", {schema.USAGE: usage, schema.CSV_ROW: row_index},
            ))
    scan = require_records(SourceScan(LAYOUT, path, schema.EMOTIONS, records, []))
    (out_dir / _COMPLETE).write_text(str(path) + "\n")
    return scan
