"""Export a version as a manifest (JSON lines), a CSV table, or an image folder.

JSON lines is the format ``training`` reads (see :mod:`fercurate.manifest`); the bytes
are those frozen, so two exports of one version are identical. ``csv`` is the sample
lines as a table (for pandas and spreadsheets); ``folder`` writes
``<out>/<split>/<label>/<id>.<ext>`` (hard links where the filesystem allows, copies
otherwise) plus the manifest, for tools that read an ImageFolder. Every format first
checks each image against the sha256 its line pins, and refuses a version whose bytes
changed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import BinaryIO

import fiftyone as fo
from tqdm import tqdm

from fercurate import images, manifest, schema, versions
from fercurate.errors import FercurateError

FORMATS = ("jsonl", "csv", "folder")
CSV_COLUMNS = ("id", "filepath", "label", "split", "weight", "original_label", "original_filepath")


def export(ds: fo.Dataset, version: str, out: BinaryIO | Path, fmt: str = "jsonl") -> dict:
    """Write version ``version`` of ``ds`` to ``out`` (a binary stream, a file path, or a
    folder for ``folder``); returns the manifest header."""
    if fmt not in FORMATS:
        raise FercurateError(f"unknown format '{fmt}'; choose from {', '.join(FORMATS)}")
    data = versions.manifest_bytes(ds, version)
    header = json.loads(data.split(b"\n", 1)[0])
    if version != schema.RAW_VERSION:  # raw was hashed just now, as it was built
        verify_bytes(_samples(data), f"version '{version}' of '{ds.name}'")
    if fmt == "jsonl":
        _write(out, data)
    elif fmt == "csv":
        _write(out, _csv(data))
    else:
        if not isinstance(out, Path):
            raise FercurateError("--format folder needs --out DIR")
        _folder(data, out)
    return header


def verify_bytes(samples: list[dict], what: str) -> None:
    """Refuse, naming the first file, a version whose images are no longer the bytes it
    pinned (a rewritten source, a recomputed crop). Version-1 lines carry no hash."""
    pinned = [s for s in samples if s.get("sha256")]
    found = images.map_files(manifest.sha256_file, [s["filepath"] for s in pinned], f"verifying {what}")
    for s, digest in zip(pinned, found):
        if digest != s["sha256"]:
            state = "is missing or unreadable" if digest is None else "has changed"
            raise FercurateError(f"{s['filepath']}: {state} since {what} was frozen (sha256 differs); restore "
                                 "the file, or freeze a new version from the dataset as it is now")


def _write(out: BinaryIO | Path, data: bytes) -> None:
    if isinstance(out, Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(out)  # never a half-written manifest under the final name
    else:
        out.write(data)
        out.flush()


def _samples(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines()[1:]]


def _csv(data: bytes) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(_samples(data))
    return buf.getvalue().encode("utf-8")


def _folder(data: bytes, out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise FercurateError(f"{out} is not empty; give an empty or new folder to --out")
    out.mkdir(parents=True, exist_ok=True)
    for s in tqdm(_samples(data), desc=f"writing {out}", unit=" img"):
        src = Path(s["filepath"])
        dst = out / s["split"] / s["label"] / f"{s['id']}{src.suffix}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    (out / "manifest.jsonl").write_bytes(data)

