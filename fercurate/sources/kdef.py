"""KDEF (Karolinska Directed Emotional Faces): ``AF01/AF01AFS.JPG``.

A file name is session (A/B), sex (F/M), actor number (01-35), emotion code
(AF AN DI HA NE SA SU) and angle (FL full left, HL half left, S straight, HR, FR).
KDEF has no splits; fercurate splits by actor so that no person is in two splits:
actors 01-25 train, 26-30 val, 31-35 test (of each sex).
"""

from __future__ import annotations

import re
from pathlib import Path

from fercurate import schema
from fercurate.errors import SourceError
from fercurate.sources.base import (
    Record, SourceScan, Skipped, list_dirs, list_files, require_dir, require_records, split_images,
)

LAYOUT = "kdef"
EMOTION_CODES = {
    "AF": "fear", "AN": "angry", "DI": "disgust", "HA": "happy",
    "NE": "neutral", "SA": "sad", "SU": "surprise",
}
ANGLES = ("FL", "HL", "S", "HR", "FR")
_FOLDER = re.compile(r"^[AB][FM]\d{2}$", re.IGNORECASE)
_NAME = re.compile(
    r"^(?P<session>[AB])(?P<sex>[FM])(?P<actor>\d{2})(?P<emotion>AF|AN|DI|HA|NE|SA|SU)(?P<angle>FL|FR|HL|HR|S)$",
    re.IGNORECASE,
)


def looks_like(path: Path) -> bool:
    return path.is_dir() and any(_FOLDER.match(d.name) for d in list_dirs(path))


def split_for_actor(number: int) -> str:
    if number <= 25:
        return schema.TRAIN
    return schema.VAL if number <= 30 else schema.TEST


def read(root: Path) -> SourceScan:
    root = require_dir(Path(root)).resolve()
    folders = [d for d in list_dirs(root) if _FOLDER.match(d.name)]
    if not folders:
        # KDEF's zip unpacks to KDEF_and_AKDEF/KDEF/: accept the parent too
        nested = root / "KDEF"
        if nested.is_dir():
            return read(nested)
        raise SourceError(
            f"{root}: no KDEF actor folders (AF01, BM35, ...); pass the KDEF folder that holds them"
        )
    records: list[Record] = []
    skipped: list[Skipped] = []
    for folder in folders:
        images, skipped_here = split_images(list_files(folder))
        skipped += skipped_here
        for img in images:
            m = _NAME.match(img.stem)
            if not m:
                skipped.append(Skipped(str(img), "name does not follow KDEF's <session><sex><actor><emotion><angle>.JPG"))
                continue
            session, sex = m["session"].upper(), m["sex"].upper()
            actor = int(m["actor"])
            meta = {
                schema.KDEF_SESSION: session,
                schema.KDEF_SEX: sex,
                schema.KDEF_ACTOR: f"{sex}{actor:02d}",
                schema.KDEF_ANGLE: m["angle"].upper(),
            }
            records.append(Record(
                str(img), EMOTION_CODES[m["emotion"].upper()], split_for_actor(actor),
                img.relative_to(root).as_posix(), meta,
            ))
    return require_records(SourceScan(LAYOUT, root, schema.EMOTIONS, records, skipped))
