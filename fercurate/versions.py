"""Frozen versions: an immutable manifest of the curated dataset, written once.

``freeze`` turns the current decisions into a manifest (:mod:`fercurate.manifest`): the
samples kept, their final labels, the crop-or-original choice, the rebalancing policy
with its weights, counts and a content hash. The manifest bytes are stored in MongoDB's
GridFS next to the dataset (so a team's server holds them too), with a record in
``schema.VERSIONS_COLLECTION``; later decisions cannot change them, and exporting a
version twice gives the same bytes.

Atomicity: the record is claimed first (a unique index on dataset + name refuses a
second freeze of one name), the manifest is written, and only then is the record marked
complete. An interrupted freeze leaves an incomplete record that is never listed or
exported and is cleared by the next freeze of that name.
"""

from __future__ import annotations

import re
from collections import Counter

import fiftyone as fo
import fiftyone.core.odm as foo
import gridfs
import pymongo
from pymongo.errors import DuplicateKeyError

import fercurate
from fercurate import config, decisions, fixes, images, manifest, schema
from fercurate.errors import FercurateError
from fercurate.signals.balance import class_weights, oversampling_plan

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
WRITING, COMPLETE = "writing", "complete"
GRIDFS_BUCKET = "fercurate_manifests"


def _collection():
    coll = foo.get_db_conn()[schema.VERSIONS_COLLECTION]
    coll.create_index([("dataset", 1), ("name", 1)], unique=True)
    return coll


def _bucket() -> gridfs.GridFSBucket:
    return gridfs.GridFSBucket(foo.get_db_conn(), bucket_name=GRIDFS_BUCKET)


def list_versions(ds: fo.Dataset) -> list[dict]:
    """The dataset's complete versions (oldest first), ``raw`` first; headers only."""
    out = [{"name": schema.RAW_VERSION, "frozen_at": None, "num_samples": len(ds), "policy": "none",
            "pending_left": None, "curator": None, "content_hash": None}]
    for doc in _collection().find({"dataset": ds.name, "state": COMPLETE}).sort("frozen_at", pymongo.ASCENDING):
        h = doc["header"]
        out.append({"name": doc["name"], "frozen_at": h["frozen_at"], "num_samples": h["num_samples"],
                    "policy": h["policy"]["name"], "pending_left": h["decisions"]["pending_left"],
                    "curator": h["curator"], "content_hash": h["content_hash"]})
    return out


def version_names(ds: fo.Dataset) -> list[str]:
    return [v["name"] for v in list_versions(ds)]


def next_name(ds: fo.Dataset, prefix: str = "clean_v") -> str:
    """The first free ``clean_vN``."""
    taken = set(version_names(ds))
    n = 1
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


def _check_name(ds: fo.Dataset, name: str) -> None:
    if not NAME_RE.match(name or ""):
        raise FercurateError(f"version name '{name}' is not allowed: use letters, digits, '_', '.' or '-' "
                             "(up to 64), starting with a letter or digit")
    if name == schema.RAW_VERSION:
        raise FercurateError(f"'{schema.RAW_VERSION}' is the built-in unfrozen version; pick another name")
    if name in set(ds.list_saved_views()) and name not in version_names(ds):
        raise FercurateError(f"dataset '{ds.name}' already has a saved view named '{name}'; pick another name")


# --- building a manifest --------------------------------------------------------------

def _rows(ds: fo.Dataset, curated_labels: bool) -> tuple[list[dict], int]:
    """One manifest sample per kept sample (sorted by split, then id), and how many fixes
    were left pending. ``curated_labels=False`` gives ``raw``: every sample as ingested."""
    fields = ["id", "filepath", f"{schema.GROUND_TRUTH}.label", schema.SPLIT, schema.FILE_HASH]
    source_fields = [f for f in schema.SOURCE_FIELDS if ds.has_sample_field(f)]
    columns = dict(zip(fields + source_fields, ds.values(fields + source_fields)))
    n = len(columns["id"])
    fix_cols = {k: ([d.to_dict() if d is not None else None for d in ds.values(f)]
                    if ds.has_sample_field(f) else [None] * n) for k, f in fixes.FIX_FIELDS.items()}
    aligned = ds.values(schema.ALIGNED_FILEPATH) if ds.has_sample_field(schema.ALIGNED_FILEPATH) else [None] * n
    soft = ds.values(schema.OOF_PROBS) if ds.has_sample_field(schema.OOF_PROBS) else [None] * n
    pending = sum(1 for col in fix_cols.values() for d in col if d and d[schema.FIX_STATUS] == schema.PENDING)
    rows = []
    for i in range(n):
        given = columns[f"{schema.GROUND_TRUTH}.label"][i]
        original = columns["filepath"][i]
        label, dropped, path = given, False, original
        if curated_labels:
            sample_fixes = {k: col[i] for k, col in fix_cols.items()}
            label, dropped = fixes.curated(sample_fixes, given)
            crop = sample_fixes[schema.USE_CROP]
            if crop and crop[schema.FIX_STATUS] == schema.ACCEPTED and aligned[i]:
                path = aligned[i]
        if dropped or label is None:
            continue
        row = {"id": columns["id"][i], "filepath": path, "label": label, "split": columns[schema.SPLIT][i],
               "original_label": given, "original_filepath": original, "_ingested_sha1": columns[schema.FILE_HASH][i],
               "source": {f: columns[f][i] for f in source_fields if columns[f][i] is not None}}
        if soft[i] is not None:
            row["soft_label"] = [round(float(v), manifest.SOFT_LABEL_DECIMALS) for v in soft[i]]
        rows.append(row)
    order = {s: k for k, s in enumerate(schema.SPLITS)}
    rows.sort(key=lambda r: (order.get(r["split"], len(order)), r["split"], r["id"]))
    _pin_bytes(ds, rows)
    return rows, (pending if curated_labels else 0)


def _pin_bytes(ds: fo.Dataset, rows: list[dict]) -> None:
    """Give every row the sha256 of the file it points at, refusing a file that cannot be
    read or an original whose bytes changed since ingest (its signals and decisions were
    made on other bytes)."""
    digests = images.digest_files([r["filepath"] for r in rows], desc="pinning image bytes")
    for r, digest in zip(rows, digests):
        ingested = r.pop("_ingested_sha1")
        if digest is None:
            raise FercurateError(f"{r['filepath']}: cannot read the image of sample {r['id']}; restore it, or "
                                 f"run 'fercurate ingest {ds.name} --update' to take its removal into account")
        if r["filepath"] == r["original_filepath"] and ingested and digest[0] != ingested:
            raise FercurateError(f"{r['filepath']}: changed since it was ingested (its signals and decisions were "
                                 f"made on other bytes); run 'fercurate ingest {ds.name} --update' and "
                                 f"'fercurate compute {ds.name}', then freeze")
        r["sha256"] = digest[1]


def _policy(name: str, rows: list[dict], classes: list[str]) -> dict:
    """The rebalancing policy with weights computed from this version's own train split."""
    if name not in manifest.POLICIES:
        raise FercurateError(f"unknown policy '{name}'; choose from {', '.join(manifest.POLICIES)}")
    train = Counter(r["label"] for r in rows if r["split"] == schema.TRAIN)
    counts = {c: int(train.get(c, 0)) for c in classes}
    weights = class_weights(counts, "effective_number", 0.9999) if any(counts.values()) else {c: 1.0 for c in classes}
    plan = oversampling_plan(counts, "median") if any(counts.values()) else {"repeat": {c: 1.0 for c in classes}}
    return {"name": name,
            "class_weights": {c: round(float(weights[c]), 6) for c in classes} if name == "class_weights"
            else {c: 1.0 for c in classes},
            "oversample_repeat": {c: float(plan["repeat"][c]) for c in classes} if name == "oversample"
            else {c: 1.0 for c in classes}}


def build(ds: fo.Dataset, name: str, policy: str = "none", curated_labels: bool = True,
          frozen_at: str | None = None, curator: str | None = None) -> tuple[dict, list[str], list[str]]:
    """(header, sample lines, sample ids) of a manifest of the dataset as it is now."""
    classes = list(ds.info.get(schema.INFO_CLASSES) or ds.distinct(f"{schema.GROUND_TRUTH}.label"))
    rows, pending = _rows(ds, curated_labels)
    pol = _policy(policy, rows, classes)
    unknown = sorted({r["label"] for r in rows} - set(classes))
    if unknown:
        raise FercurateError(f"labels {', '.join(unknown)} are not in dataset.info['{schema.INFO_CLASSES}'] "
                             f"of '{ds.name}'; fix the labels or the class list")
    lines = [manifest.dumps({**r, "weight": pol["class_weights"][r["label"]]}) for r in rows]
    split_counts: dict[str, dict[str, int]] = {}
    for r in rows:
        split_counts.setdefault(r["split"], {c: 0 for c in classes})[r["label"]] += 1
    header = {
        "format": manifest.FORMAT, "format_version": manifest.FORMAT_VERSION, "dataset": ds.name,
        "version": name, "content_hash": manifest.content_hash(lines), "num_samples": len(lines),
        "classes": classes, "split_counts": split_counts, "policy": pol,
        "frozen_at": frozen_at, "curator": curator, "fercurate_version": fercurate.__version__,
        "decisions": {"pending_left": pending, "dropped": len(ds) - len(rows) if curated_labels else 0,
                      "relabelled": sum(r["label"] != r["original_label"] for r in rows),
                      "cropped": sum(r["filepath"] != r["original_filepath"] for r in rows),
                      "records": decisions.count(ds) if curated_labels else 0},
    }
    return header, lines, [r["id"] for r in rows]


# --- freezing -------------------------------------------------------------------------

def freeze(ds: fo.Dataset, name: str, policy: str = "none", curator: str | None = None) -> dict:
    """Write version ``name`` of the dataset as it is now; returns its header.

    Pending fixes are allowed: their samples keep the original label and image, and the
    header says how many were left. A name that exists is refused.
    """
    _check_name(ds, name)
    if policy not in manifest.POLICIES:
        raise FercurateError(f"unknown policy '{policy}'; choose from {', '.join(manifest.POLICIES)}")
    coll = _collection()
    _clear_interrupted(ds, name)
    try:
        claim = coll.insert_one({"dataset": ds.name, "name": name, "state": WRITING, "started_at": decisions.now()})
    except DuplicateKeyError:
        raise FercurateError(f"version '{name}' of dataset '{ds.name}' exists and is frozen; pick another name "
                             f"(existing: {', '.join(version_names(ds))})") from None
    header, lines, kept_ids = build(ds, name, policy, frozen_at=decisions.now(), curator=curator or config.curator())
    file_id = _bucket().upload_from_stream(f"{ds.name}/{name}.jsonl", _encode(header, lines),
                                           metadata={"dataset": ds.name, "version": name})
    ds.save_view(name, ds.select(kept_ids), description=f"fercurate frozen version {name} "
                 f"({header['num_samples']} samples, {header['content_hash'][:15]}…)", overwrite=True)
    coll.update_one({"_id": claim.inserted_id}, {"$set": {"state": COMPLETE, "file_id": file_id, "header": header,
                                                          "frozen_at": header["frozen_at"]}})
    return header


def _encode(header: dict, lines: list[str]) -> bytes:
    return (manifest.dumps(header) + "".join(lines)).encode("utf-8")


def _clear_interrupted(ds: fo.Dataset, name: str) -> None:
    """Remove what an interrupted freeze of ``name`` left behind (an incomplete record and
    any manifest file it wrote)."""
    coll = _collection()
    stale = coll.find_one({"dataset": ds.name, "name": name, "state": WRITING})
    if stale is None:
        return
    for f in _bucket().find({"metadata.dataset": ds.name, "metadata.version": name}):
        _bucket().delete(f._id)
    coll.delete_one({"_id": stale["_id"]})


# --- reading --------------------------------------------------------------------------

def manifest_bytes(ds: fo.Dataset, name: str) -> bytes:
    """The manifest of a frozen version exactly as written, or of ``raw`` built now."""
    if name == schema.RAW_VERSION:
        header, lines, _ = build(ds, name, curated_labels=False)
        return _encode(header, lines)
    doc = _collection().find_one({"dataset": ds.name, "name": name, "state": COMPLETE})
    if doc is None:
        raise FercurateError(f"no version '{name}' of dataset '{ds.name}'; versions: {', '.join(version_names(ds))}")
    return _bucket().open_download_stream(doc["file_id"]).read()


def delete_for(dataset_name: str) -> None:
    """Remove a deleted dataset's versions."""
    for f in _bucket().find({"metadata.dataset": dataset_name}):
        _bucket().delete(f._id)
    _collection().delete_many({"dataset": dataset_name})
