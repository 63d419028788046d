"""Review queues: one per fix kind, in review order, and what the panel shows of a sample.

Read-only over the fix fields :mod:`fercurate.fixes` writes; the saved queue views
(``review-label-issues`` ...) are what the App's view menu and ``decide --view`` name.
"""

from __future__ import annotations

from collections.abc import Iterable

import fiftyone as fo
from fiftyone import ViewField as F

from fercurate import decisions, schema
from fercurate.fixes import FIX_FIELDS, check_kinds


def counts(ds: fo.Dataset) -> dict[str, dict[str, int]]:
    """{kind: {status: n}} with every status listed (one aggregation pass)."""
    present = {k: f for k, f in FIX_FIELDS.items() if ds.has_sample_field(f)}
    results = ds.aggregate([fo.CountValues(f"{f}.{schema.FIX_STATUS}") for f in present.values()])
    have = dict(zip(present, results))
    return {kind: {s: int(have.get(kind, {}).get(s, 0)) for s in schema.FIX_STATUSES} for kind in FIX_FIELDS}


def queue_view(ds: fo.Dataset, kind: str) -> fo.DatasetView:
    """Samples with a ``kind`` fix: pending first, then by evidence (strongest first), ties
    by id so every query of the queue agrees on its order; duplicates stay next to their group."""
    check_kinds([kind])
    field = FIX_FIELDS[kind]
    view = ds.exists(field)
    pending_last = (F(f"{field}.{schema.FIX_STATUS}") != schema.PENDING)
    if kind == schema.DROP_DUPLICATE:
        return view.sort_by([(pending_last, 1), (F(schema.DUP_GROUP), 1), (F(schema.DUP_KEEPER), -1), (F("_id"), 1)])
    return view.sort_by([(pending_last, 1), (F(f"{field}.{schema.FIX_SCORE}"), 1), (F("_id"), 1)])


def save_queue_views(ds: fo.Dataset) -> None:
    """Save one view per queue (``review-label-issues`` ...) for the App's view menu."""
    for kind, name in schema.QUEUE_VIEWS.items():
        ds.save_view(name, queue_view(ds, kind), description=f"fercurate review queue: {kind} fixes",
                     overwrite=True)


def pending_ids(ds: fo.Dataset, kind: str, limit: int) -> list[str]:
    """The queue's first ``limit`` pending samples in review order (strongest evidence first)."""
    queue = queue_view(ds, kind)
    return queue.match(F(f"{FIX_FIELDS[kind]}.{schema.FIX_STATUS}") == schema.PENDING).limit(limit).values("id")


def pending_by_score(view, kind: str, at_most: float | None = None, at_least: float | None = None) -> list[str]:
    """Ids in ``view`` whose pending ``kind`` fix has a score within the bounds (inclusive):
    ``at_most`` picks the strongest evidence (to accept), ``at_least`` the weakest (to reject)."""
    check_kinds([kind])
    field = FIX_FIELDS[kind]
    if not view.has_sample_field(field):
        return []
    match = F(f"{field}.{schema.FIX_STATUS}") == schema.PENDING
    score = F(f"{field}.{schema.FIX_SCORE}")
    if at_most is not None:
        match &= score <= at_most
    if at_least is not None:
        match &= score >= at_least
    return view.match(match).values("id")


def next_pending(ds: fo.Dataset, kind: str, current: str | None = None, skipped: Iterable[str] = ()) -> str | None:
    """The first pending sample of a queue that is neither ``current`` nor skipped (wraps
    to the skipped ones when nothing else is left), or None."""
    skipped = list(skipped)
    pending = [i for i in pending_ids(ds, kind, len(skipped) + 2) if i != current]
    fresh = [i for i in pending if i not in skipped]
    return (fresh or pending or [None])[0]


# --- evidence for the review panel ----------------------------------------------------

def evidence(ds: fo.Dataset, sample_id: str) -> dict:
    """Everything the review panel shows for one sample, JSON-able."""
    s = ds[sample_id]
    classes = list(ds.info.get(schema.INFO_CLASSES) or [])
    probs = s[schema.OOF_PROBS] if ds.has_sample_field(schema.OOF_PROBS) else None
    fixes = {k: s[f].to_dict() for k, f in FIX_FIELDS.items() if ds.has_sample_field(f) and s[f] is not None}
    for fix in fixes.values():
        fix.pop("_cls", None)
    group = []
    if ds.has_sample_field(schema.DUP_GROUP) and s[schema.DUP_GROUP] is not None:
        members = ds.match(F(schema.DUP_GROUP) == s[schema.DUP_GROUP])
        for mid, path, label, split, keeper in zip(*members.values(
                ["id", "filepath", f"{schema.GROUND_TRUTH}.label", schema.SPLIT, schema.DUP_KEEPER])):
            group.append({"id": mid, "filepath": path, "label": label, "split": split, "keeper": bool(keeper)})
    curated_label = s[schema.CURATED_LABEL] if ds.has_sample_field(schema.CURATED_LABEL) else None
    return {
        "id": s.id, "filepath": s.filepath, "split": s[schema.SPLIT],
        "label": s[schema.GROUND_TRUTH].label if s[schema.GROUND_TRUTH] else None,
        "curated_label": curated_label.label if curated_label else None,
        "curated_drop": bool(s[schema.CURATED_DROP]) if ds.has_sample_field(schema.CURATED_DROP) else False,
        "aligned_filepath": s[schema.ALIGNED_FILEPATH] if ds.has_sample_field(schema.ALIGNED_FILEPATH) else None,
        "probs": dict(zip(classes, probs)) if probs and len(probs) == len(classes) else None,
        "fixes": fixes, "group": group, "history": decisions.history(ds, sample_id),
    }
