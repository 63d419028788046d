"""The given label stays given: ``ground_truth`` is read-only, and edits that bypass the
lock are detected.

fercurate never changes the given label: a curator's relabel is an accepted fix, logged in
the audit log and shown as ``curated_label``. FiftyOne's own in-App annotation (and any
script) could still edit ``ground_truth`` and bypass the log, undo and the signals'
fingerprints, so the field is marked read-only (FiftyOne refuses edits to it), and a
read-only copy, ``ingested_label``, records what ingest wrote. Only ingest writes either,
through :func:`writable`. A sample whose label differs from its copy was edited outside
fercurate: the signals refuse to re-score the dataset silently (:func:`check_unedited`),
and ``fercurate ingest NAME --update`` restores the labels from the source.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import fiftyone as fo
from fiftyone import ViewField as F

from fercurate import schema
from fercurate.errors import FercurateError

LOCKED = (schema.GROUND_TRUTH, schema.INGESTED_LABEL)


def _set_read_only(ds: fo.Dataset, read_only: bool) -> None:
    for name in LOCKED:
        field = ds.get_field(name)
        if field is not None and field.read_only != read_only:
            field.read_only = read_only
            field.save()


@contextmanager
def writable(ds: fo.Dataset) -> Iterator[None]:
    """Unlock the given label for fercurate's own ingest, and lock it again whatever happens."""
    _set_read_only(ds, False)
    try:
        yield
    finally:
        _set_read_only(ds, True)


def protect(ds: fo.Dataset) -> None:
    """Lock ``ground_truth`` and keep its read-only copy (datasets ingested before the copy
    existed get it from their current labels)."""
    if not ds.has_sample_field(schema.INGESTED_LABEL):
        ds.add_sample_field(schema.INGESTED_LABEL, fo.StringField)
    missing = ds.exists(schema.INGESTED_LABEL, False)
    if not len(missing):
        _set_read_only(ds, True)  # cheap when already locked: called before every signal run
        return
    with writable(ds):
        ids, labels = missing.values(["id", f"{schema.GROUND_TRUTH}.label"])
        ds.set_values(schema.INGESTED_LABEL, dict(zip(ids, labels)), key_field="id")


def edits(ds: fo.Dataset) -> list[tuple[str, str | None, str | None]]:
    """(sample id, label as ingested, label now) of every sample edited outside fercurate."""
    if not ds.has_sample_field(schema.INGESTED_LABEL):
        return []
    view = ds.match(F(f"{schema.GROUND_TRUTH}.label") != F(schema.INGESTED_LABEL))
    return list(zip(*view.values(["id", schema.INGESTED_LABEL, f"{schema.GROUND_TRUTH}.label"]))) if len(view) else []


def check_unedited(ds: fo.Dataset) -> None:
    """A one-line error when given labels were edited behind the audit log."""
    found = edits(ds)
    if found:
        sid, was, now = found[0]
        raise FercurateError(
            f"{len(found)} given label(s) of dataset '{ds.name}' were edited outside fercurate (e.g. sample {sid}: "
            f"'{was}' -> '{now}'), so no decision or undo records them; run 'fercurate ingest {ds.name} --update' "
            "to restore them from the source, then change labels with 'fercurate set-label' or the review panel")
