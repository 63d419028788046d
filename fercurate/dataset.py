"""Ingest a :class:`~fercurate.sources.SourceScan` into a persistent FiftyOne dataset.

Ingesting is idempotent: samples are matched to records by ``source_key``, so the same
source ingested twice adds nothing. A source that changed on disk (files added, removed,
relabelled or rewritten) is reported as a :class:`SourceDiff` and applied only when
asked (``update=True``): a silent relabel would change the data under a curator's
decisions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from fercurate import config, given_labels, schema
from fercurate.errors import FercurateError
from fercurate.images import ImageInfo, hash_files, inspect_images
from fercurate.sources import Record, Skipped, SourceScan


@dataclass
class SourceDiff:
    """How a source on disk differs from the dataset built from it (keys per kind)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)  # same key, other bytes
    #: same key and bytes at another path (data folder moved, csv cache rebuilt): paths are
    #: updated without --update, since nothing a curator judged has changed.
    moved: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.relabelled or self.rewritten)

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.removed)} removed, "
                f"{len(self.relabelled)} relabelled, {len(self.rewritten)} rewritten")


@dataclass
class IngestReport:
    dataset: str
    layout: str
    source: str
    created: bool
    samples: int
    skipped: list[Skipped]
    diff: SourceDiff
    applied: bool  # whether ``diff`` was written to the dataset
    report_path: str = ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["diff"] = {k: len(v) for k, v in d["diff"].items()}
        return d


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def exists(name: str) -> bool:
    return fo.dataset_exists(name)


def load(name: str) -> fo.Dataset:
    """The fercurate dataset ``name``, or a one-line error listing the ones that exist."""
    if not fo.dataset_exists(name):
        names = list_datasets()
        known = ", ".join(names) if names else "none yet"
        raise FercurateError(f"no dataset named '{name}' (existing: {known}); create it with 'fercurate ingest'")
    return fo.load_dataset(name)


def list_datasets() -> list[str]:
    return [n for n in fo.list_datasets() if schema.DATASET_TAG in fo.load_dataset(n).tags]


def delete(name: str) -> None:
    """Delete the dataset, its decision log and its frozen versions (image files stay)."""
    from fercurate import decisions, versions
    load(name).delete()
    decisions.delete_for(name)
    versions.delete_for(name)


def _metadata(info: ImageInfo) -> fo.ImageMetadata:
    return fo.ImageMetadata(size_bytes=info.size_bytes, mime_type=info.mime_type,
                            width=info.width, height=info.height, num_channels=info.num_channels)


def _new_sample(record: Record, info: ImageInfo, layout: str) -> fo.Sample:
    return fo.Sample(
        filepath=record.filepath,
        tags=[record.split],
        metadata=_metadata(info),
        **{
            schema.GROUND_TRUTH: fo.Classification(label=record.label),
            schema.INGESTED_LABEL: record.label,
            schema.SPLIT: record.split,
            schema.SOURCE: layout,
            schema.SOURCE_KEY: record.key,
            schema.FILE_HASH: info.sha1,
            **record.meta,
        },
    )


def _create(name: str, scan: SourceScan) -> fo.Dataset:
    ds = fo.Dataset(name, persistent=True)
    ds.tags = [schema.DATASET_TAG]
    used = {k for r in scan.records for k in r.meta}  # KDEF fields only on KDEF, etc.
    for field_name, ftype in schema.SOURCE_FIELDS.items():
        if field_name in used:
            ds.add_sample_field(field_name, fo.IntField if ftype is int else fo.StringField)
    ds.add_sample_field(schema.SPLIT, fo.StringField)
    ds.add_sample_field(schema.SOURCE, fo.StringField)
    ds.add_sample_field(schema.SOURCE_KEY, fo.StringField)
    ds.add_sample_field(schema.FILE_HASH, fo.StringField)
    ds.add_sample_field(schema.GROUND_TRUTH, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    ds.add_sample_field(schema.INGESTED_LABEL, fo.StringField)
    ds.default_classes = list(scan.classes)
    ds.info[schema.INFO_CLASSES] = list(scan.classes)
    return ds


def _existing(ds: fo.Dataset) -> dict[str, tuple[str, str, str]]:
    """source_key -> (label, file hash, filepath) of the samples already in ``ds``."""
    keys, labels, hashes, paths = ds.values(
        [schema.SOURCE_KEY, f"{schema.GROUND_TRUTH}.label", schema.FILE_HASH, "filepath"]
    )
    return {k: (lab, h, p) for k, lab, h, p in zip(keys, labels, hashes, paths)}


def diff_source(have: dict[str, tuple[str, str, str]], scan: SourceScan, hashes: dict[str, str]) -> SourceDiff:
    """Compare the dataset's samples with the usable records (``hashes``: key -> sha1)."""
    diff = SourceDiff()
    for r in scan.records:
        if r.key not in hashes:
            continue  # unreadable now: reported as skipped, not as removed
        if r.key not in have:
            diff.added.append(r.key)
            continue
        label, sha1, path = have[r.key]
        if label != r.label:
            diff.relabelled.append(r.key)
        if sha1 != hashes[r.key]:
            diff.rewritten.append(r.key)
        elif path != r.filepath:
            diff.moved.append(r.key)
    listed = {r.key for r in scan.records}
    diff.removed = [k for k in have if k not in listed]
    return diff


def _check_images(scan: SourceScan, have: dict[str, tuple[str, str, str]]) -> tuple[dict[str, str], dict[str, ImageInfo], list[Skipped]]:
    """Hash every file; fully decode only files the dataset does not hold yet (new or
    rewritten), which keeps an unchanged re-run cheap."""
    skipped = list(scan.skipped)
    hashes: dict[str, str] = {}
    to_decode: list[Record] = []
    for r, sha1 in zip(scan.records, hash_files([r.filepath for r in scan.records])):
        if sha1 is None:
            skipped.append(Skipped(r.filepath, "unreadable file"))
        elif r.key in have and have[r.key][1] == sha1:
            hashes[r.key] = sha1
        else:
            to_decode.append(r)
    infos: dict[str, ImageInfo] = {}
    for r, res in zip(to_decode, inspect_images([r.filepath for r in to_decode])):
        if isinstance(res, ImageInfo):
            infos[r.key] = res
            hashes[r.key] = res.sha1
        else:
            skipped.append(Skipped(r.filepath, res))
    return hashes, infos, skipped


def _apply(ds: fo.Dataset, scan: SourceScan, hashes: dict[str, str], infos: dict[str, ImageInfo],
           diff: SourceDiff) -> None:
    by_key = {r.key: r for r in scan.records}
    if diff.removed:
        ds.delete_samples(ds.match(F(schema.SOURCE_KEY).is_in(diff.removed)))
    changed = set(diff.relabelled) | set(diff.rewritten) | set(diff.moved)
    if changed:
        view = ds.match(F(schema.SOURCE_KEY).is_in(sorted(changed)))
        with given_labels.writable(ds):
            _rewrite(view, by_key, hashes, infos)
    if diff.added:
        ds.add_samples([_new_sample(by_key[k], infos[k], scan.layout) for k in diff.added])  # progress: fo.config (off when not a terminal)


def _rewrite(view, by_key: dict, hashes: dict[str, str], infos: dict[str, ImageInfo]) -> None:
    """Bring changed samples in line with their source records (label, file, split)."""
    for sample in view.iter_samples(autosave=True):
        r = by_key[sample[schema.SOURCE_KEY]]
        sample[schema.GROUND_TRUTH] = fo.Classification(label=r.label)
        sample[schema.INGESTED_LABEL] = r.label
        sample.filepath = r.filepath
        sample[schema.FILE_HASH] = hashes[r.key]
        if r.key in infos:  # rewritten: its size or format may have changed
            sample.metadata = _metadata(infos[r.key])
        sample.tags = sorted((set(sample.tags) - set(schema.SPLITS)) | {r.split})
        sample[schema.SPLIT] = r.split


def _set_paths(ds: fo.Dataset, scan: SourceScan, keys: list[str]) -> None:
    new_path = {r.key: r.filepath for r in scan.records}
    view = ds.match(F(schema.SOURCE_KEY).is_in(keys))
    ids, view_keys = view.values(["id", schema.SOURCE_KEY])
    ds.set_values("filepath", dict(zip(ids, [new_path[k] for k in view_keys])), key_field="id")


def ingest(scan: SourceScan, name: str, update: bool = False) -> IngestReport:
    """Bring dataset ``name`` in line with ``scan``; see the module docstring."""
    created = not fo.dataset_exists(name)
    ds = None if created else fo.load_dataset(name)
    have = {} if created else _existing(ds)
    hashes, infos, skipped = _check_images(scan, have)
    if not hashes:
        raise FercurateError(f"{scan.root}: none of the {len(scan.records)} images could be read; "
                             "check the files (e.g. open one with an image viewer)")
    if created:
        ds = _create(name, scan)
        diff = SourceDiff(added=[r.key for r in scan.records if r.key in hashes])
    else:
        if ds.info.get(schema.INFO_CLASSES) and list(scan.classes) != ds.info[schema.INFO_CLASSES]:
            new = sorted(set(scan.classes) - set(ds.info[schema.INFO_CLASSES]))
            if new and not update:
                raise FercurateError(
                    f"{scan.root}: classes {', '.join(new)} are not in dataset '{name}'; "
                    "re-run with --update to add them, or ingest under another --name")
        diff = diff_source(have, scan, hashes)
    applied = created or (bool(diff) and update)
    if diff.moved and not applied:
        _set_paths(ds, scan, diff.moved)
    if applied:
        _apply(ds, scan, hashes, infos, diff)
        ds.default_classes = sorted(set(ds.default_classes or []) | set(scan.classes)) if not created else list(scan.classes)
        ds.info[schema.INFO_CLASSES] = list(ds.default_classes)
        ds.info[schema.INFO_SOURCE] = {"layout": scan.layout, "path": str(scan.root), "ingested_at": now_iso()}
    given_labels.protect(ds)
    report = IngestReport(name, scan.layout, str(scan.root), created, len(ds), skipped, diff, applied)
    report.report_path = str(_write_report(report))
    ds.info[schema.INFO_INGEST_REPORT] = {
        "at": now_iso(), "skipped": len(skipped), "changes": diff.summary(), "applied": applied,
        "report": report.report_path,
    }
    ds.save()
    return report


def _write_report(report: IngestReport) -> Path:
    out = config.reports_dir(report.dataset)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"ingest-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}.json"
    data = report.to_json()
    data["skipped"] = [asdict(s) for s in report.skipped]
    data["changed_keys"] = {k: v[:1000] for k, v in asdict(report.diff).items()}
    path.write_text(json.dumps(data, indent=2))
    return path


def counts(ds: fo.Dataset) -> dict[str, dict[str, int]]:
    """Samples per split and class: ``{split: {class: n}}``."""
    out: dict[str, dict[str, int]] = {}
    for split, label in zip(*ds.values([schema.SPLIT, f"{schema.GROUND_TRUTH}.label"])):
        out.setdefault(split, {}).setdefault(label, 0)
        out[split][label] += 1
    return out
