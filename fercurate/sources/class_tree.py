"""Any image-classification tree: ``<split>/<class>/*`` or ``<class>/*``.

Class names are the folder names, so any label set works. A tree without split folders
gets a deterministic 80/10/10 split from each file's relative path
(:func:`~fercurate.sources.base.stable_split`).
"""

from __future__ import annotations

from pathlib import Path

from fercurate import schema
from fercurate.errors import SourceError
from fercurate.sources.base import (
    Record, SourceScan, Skipped, list_dirs, list_files, require_dir, require_records, split_images,
    stable_split,
)

LAYOUT = "tree"
SPLIT_NAMES = {
    "train": schema.TRAIN, "training": schema.TRAIN,
    "val": schema.VAL, "valid": schema.VAL, "validation": schema.VAL,
    "test": schema.TEST, "testing": schema.TEST,
}


def looks_like(path: Path) -> bool:
    return path.is_dir() and bool(list_dirs(path))


def read(root: Path) -> SourceScan:
    root = require_dir(Path(root)).resolve()
    tops = list_dirs(root)
    split_tops = [d for d in tops if d.name.lower() in SPLIT_NAMES]
    records: list[Record] = []
    skipped: list[Skipped] = []

    def add_class_dir(class_dir: Path, split: str | None) -> None:
        images, skipped_here = split_images(list_files(class_dir))
        skipped.extend(skipped_here)
        for img in images:
            key = img.relative_to(root).as_posix()
            records.append(Record(str(img), class_dir.name, split or stable_split(key), key, {}))

    if split_tops:
        others = [d.name for d in tops if d not in split_tops]
        if others:
            raise SourceError(
                f"{root}: mixes split folders ({', '.join(d.name for d in split_tops)}) with "
                f"other folders ({', '.join(others)}); use <split>/<class>/* or <class>/* throughout"
            )
        for split_dir in split_tops:
            for class_dir in list_dirs(split_dir):
                add_class_dir(class_dir, SPLIT_NAMES[split_dir.name.lower()])
    else:
        for class_dir in tops:
            add_class_dir(class_dir, None)
    classes = tuple(sorted({r.label for r in records}))
    return require_records(SourceScan(LAYOUT, root, classes, records, skipped))
