"""What every source reader produces: records, and the files it had to skip."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fercurate import schema
from fercurate.errors import SourceError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})


@dataclass(frozen=True)
class Record:
    """One image of a source, in the form every layout is reduced to."""

    filepath: str  # absolute path of an image file
    label: str  # class name
    split: str  # one of schema.SPLITS
    key: str  # stable id inside the source: relative path, or "row:<n>" for a csv
    meta: dict[str, Any] = field(default_factory=dict)  # keys from schema.SOURCE_FIELDS


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class SourceScan:
    """A source read from disk: its layout, class list, records and skipped files."""

    layout: str
    root: Path
    classes: tuple[str, ...]
    records: list[Record]
    skipped: list[Skipped] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Records per split and class: ``{split: {class: n}}``."""
        out: dict[str, dict[str, int]] = {}
        for r in self.records:
            out.setdefault(r.split, {}).setdefault(r.label, 0)
            out[r.split][r.label] += 1
        return out


def require_dir(path: Path) -> Path:
    if not path.exists():
        raise SourceError(f"{path}: does not exist; pass the folder that holds the data with --source PATH")
    if not path.is_dir():
        raise SourceError(f"{path}: is not a folder; pass the dataset's top folder")
    return path


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name in {"Thumbs.db", "desktop.ini", "__MACOSX"}


def list_files(folder: Path) -> list[Path]:
    """Non-hidden files directly inside ``folder``, sorted (stable record order)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not is_hidden(p))


def list_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_hidden(p))


def split_images(files: list[Path]) -> tuple[list[Path], list[Skipped]]:
    """Keep image files; list the others as skipped (a README in a class folder is not fatal)."""
    images, skipped = [], []
    for f in files:
        if f.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(f)
        else:
            skipped.append(Skipped(str(f), "not an image file (by extension)"))
    return images, skipped


def stable_split(key: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """A deterministic split for sources that have none: the same key always lands in
    the same split, and adding files never moves existing ones."""
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < test_fraction:
        return schema.TEST
    if bucket < test_fraction + val_fraction:
        return schema.VAL
    return schema.TRAIN


def require_records(scan: SourceScan) -> SourceScan:
    if not scan.records:
        raise SourceError(
            f"{scan.root}: no images found for layout '{scan.layout}'; "
            "check the path and that images sit in class folders"
        )
    return scan
