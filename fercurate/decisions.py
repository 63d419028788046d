"""The audit log: every decision a curator makes, append-only, in MongoDB.

The log lives in its own collection next to FiftyOne's (``schema.DECISIONS_COLLECTION``),
so it is on whatever database the datasets are on (the bundled one, or a team's server)
and survives the App, the CLI and the machine restarting. A record is written *before*
the sample changes; records are never edited or deleted (an undo is a new record that
points at the one it takes back), except when the dataset itself is deleted.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import fiftyone as fo
import fiftyone.core.odm as foo
import pymongo

from fercurate import schema

CSV_COLUMNS = ("at", "curator", "dataset", "sample_id", "filepath", "label", "kind", "action",
               "from_status", "to_status", "from_target", "to_target", "undoes", "record_id")


@dataclass
class Change:
    """One fix of one sample going from ``before`` to ``after`` (fix documents as dicts)."""

    sample_id: str
    kind: str
    action: str
    before: dict | None
    after: dict | None
    curator: str
    at: str
    undoes: object | None = None   # the record an undo takes back


def now() -> str:
    """UTC time with microseconds, as stored on fixes and records (sorts as a string)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _collection():
    coll = foo.get_db_conn()[schema.DECISIONS_COLLECTION]
    coll.create_index([("dataset", 1), ("sample_id", 1), ("kind", 1), ("at", 1)])
    return coll


def _clean(fix: dict | None) -> dict | None:
    return None if fix is None else {k: v for k, v in fix.items() if k != "_cls"}


def append(ds: fo.Dataset, changes: Iterable[Change]) -> None:
    """Write the records (one insert, acknowledged by the server before returning)."""
    docs = [{"dataset": ds.name, "sample_id": c.sample_id, "kind": c.kind, "action": c.action,
             "before": _clean(c.before), "after": _clean(c.after), "curator": c.curator, "at": c.at,
             "undoes": c.undoes} for c in changes]
    if docs:
        _collection().insert_many(docs, ordered=True)


def _records(ds: fo.Dataset, ids: list[str] | None = None, kinds: Iterable[str] | None = None) -> list[dict]:
    query: dict = {"dataset": ds.name}
    if ids is not None:
        query["sample_id"] = {"$in": list(ids)}
    if kinds is not None:
        query["kind"] = {"$in": list(kinds)}
    return list(_collection().find(query).sort([("at", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)]))


def latest_effective(ds: fo.Dataset, ids: list[str], kinds: Iterable[str]) -> list[dict]:
    """Per (sample, kind), the latest decision that no later undo took back."""
    stacks: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in _records(ds, ids, kinds):
        stack = stacks[(r["sample_id"], r["kind"])]
        if r["action"] == schema.UNDO:
            if stack and stack[-1]["_id"] == r["undoes"]:
                stack.pop()
        else:
            stack.append(r)
    return [stack[-1] for stack in stacks.values() if stack]


def _status(fix: dict | None) -> str | None:
    return fix.get(schema.FIX_STATUS) if fix else None


def _target(fix: dict | None) -> str | None:
    return fix.get(schema.FIX_TARGET) if fix else None


def _row(r: dict) -> dict:
    return {"at": r["at"], "curator": r["curator"], "dataset": r["dataset"], "sample_id": r["sample_id"],
            "kind": r["kind"], "action": r["action"], "from_status": _status(r["before"]),
            "to_status": _status(r["after"]), "from_target": _target(r["before"]), "to_target": _target(r["after"]),
            "undoes": str(r["undoes"]) if r.get("undoes") else None, "record_id": str(r["_id"])}


def history(ds: fo.Dataset, sample_id: str | None = None) -> list[dict]:
    """Decision records (one sample's, or the dataset's), newest first, JSON-able."""
    return [_row(r) for r in reversed(_records(ds, [sample_id] if sample_id else None))]


def count(ds: fo.Dataset) -> int:
    """How many records the dataset's log holds."""
    return _collection().count_documents({"dataset": ds.name})


def export_csv(ds: fo.Dataset, out: Path | TextIO) -> int:
    """Write the dataset's whole audit trail, oldest first, with each sample's file and
    given label, to a file (replaced atomically) or a text stream; returns the number of
    records."""
    rows = [_row(r) for r in _records(ds)]
    ids = sorted({r["sample_id"] for r in rows})
    info = {}
    if ids:
        view = ds.select(ids)
        info = {i: (p, lab) for i, p, lab in zip(*view.values(["id", "filepath", f"{schema.GROUND_TRUTH}.label"]))}

    def write(f: TextIO) -> None:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            filepath, label = info.get(row["sample_id"], (None, None))
            writer.writerow({**row, "filepath": filepath, "label": label})

    if isinstance(out, Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            write(f)
        tmp.replace(out)
    else:
        write(out)
    return len(rows)


def delete_for(dataset_name: str) -> int:
    """Remove a deleted dataset's records (the only time records go)."""
    return _collection().delete_many({"dataset": dataset_name}).deleted_count
