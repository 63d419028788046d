"""FER2013 as the Kaggle image folders: ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``.

The file name carries FER2013's original ``Usage``: ``Training_*`` is the train split,
``PublicTest_*`` the validation split and ``PrivateTest_*`` the test split (both in
``test/``). Files without that prefix take the split of their top folder.
"""

from __future__ import annotations

from pathlib import Path

from fercurate import schema
from fercurate.errors import SourceError
from fercurate.sources.base import (
    Record, SourceScan, Skipped, list_dirs, list_files, require_dir, require_records, split_images,
)

LAYOUT = "fer2013_folder"
TOP_FOLDERS = {"train": schema.TRAIN, "test": schema.TEST}
_PREFIX_USAGE = {"Training_": "Training", "PublicTest_": "PublicTest", "PrivateTest_": "PrivateTest"}


def looks_like(path: Path) -> bool:
    """train/ or test/ holding at least one emotion folder (a cats/dogs tree is not FER2013)."""
    tops = [path / t for t in TOP_FOLDERS if (path / t).is_dir()] if path.is_dir() else []
    return any(d.name.lower() in schema.EMOTIONS for top in tops for d in list_dirs(top))


def usage_from_name(name: str) -> str | None:
    for prefix, usage in _PREFIX_USAGE.items():
        if name.startswith(prefix):
            return usage
    return None


def read(root: Path) -> SourceScan:
    root = require_dir(Path(root)).resolve()
    tops = [root / t for t in TOP_FOLDERS if (root / t).is_dir()]
    if not tops:
        raise SourceError(
            f"{root}: no train/ or test/ folder; the FER2013 Kaggle layout is "
            "train/<class>/*.jpg and test/<class>/*.jpg (for fer2013.csv pass the csv file)"
        )
    records: list[Record] = []
    skipped: list[Skipped] = []
    for top in tops:
        for class_dir in list_dirs(top):
            label = class_dir.name.lower()
            if label not in schema.EMOTIONS:
                raise SourceError(
                    f"{class_dir}: unknown class folder '{class_dir.name}'; FER2013 classes are "
                    f"{', '.join(schema.EMOTIONS)} (rename it, or ingest with --layout tree for custom classes)"
                )
            images, skipped_here = split_images(list_files(class_dir))
            skipped += skipped_here
            for img in images:
                usage = usage_from_name(img.name)
                split = schema.FER2013_USAGE_TO_SPLIT[usage] if usage else TOP_FOLDERS[top.name]
                meta = {schema.USAGE: usage} if usage else {}
                records.append(Record(str(img), label, split, img.relative_to(root).as_posix(), meta))
    return require_records(SourceScan(LAYOUT, root, schema.EMOTIONS, records, skipped))
