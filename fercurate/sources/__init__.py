"""Readers that turn a dataset on disk into :class:`~fercurate.sources.base.Record` s.

One module per layout, each with ``LAYOUT``, ``looks_like(path)`` and ``read(path)``.
``read_source`` picks the reader by name or by looking at the path.
"""

from __future__ import annotations

from pathlib import Path

from fercurate.errors import SourceError
from fercurate.sources import class_tree, fer2013_csv, fer2013_folder, kdef
from fercurate.sources.base import Record, Skipped, SourceScan

READERS = {m.LAYOUT: m for m in (fer2013_folder, fer2013_csv, kdef, class_tree)}
#: Layouts a dataset name implies, for ``fercurate launch NAME``.
LAYOUTS_FOR_NAME = {"fer2013": ("fer2013_csv", "fer2013_folder"), "kdef": ("kdef",)}

__all__ = ["READERS", "Record", "Skipped", "SourceScan", "detect_layout", "read_source"]


def detect_layout(path: Path, candidates: tuple[str, ...] | None = None) -> str:
    """The first layout (in ``candidates``, default all) whose reader recognises ``path``."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: does not exist; pass the folder or csv that holds the data with --source PATH")
    for layout in candidates or tuple(READERS):
        if READERS[layout].looks_like(path):
            return layout
    expected = ", ".join(candidates or tuple(READERS))
    raise SourceError(f"{path}: not a recognised layout ({expected}); see 'fercurate ingest --help' for the layouts")


def read_source(path: Path, layout: str | None = None) -> SourceScan:
    """Read ``path`` with the reader for ``layout`` (detected when None)."""
    if layout is not None and layout not in READERS:
        raise SourceError(f"unknown layout '{layout}'; choose one of {', '.join(READERS)}")
    return READERS[layout or detect_layout(path)].read(Path(path))
