"""The machinery every signal shares: skip-if-unchanged, resumable work, bookkeeping.

A signal is a :class:`Signal` subclass with a ``name``, a ``params`` dataclass and a
``compute`` method that writes nothing to the dataset: it returns a :class:`SignalResult`
(its summary, the sample fields it sets, and any dataset-level records), and the runner
writes them all through :func:`write_result`, the one write path. The runner (:func:`fercurate.signals.run_signals`) calls ``compute``
only when the signal's *fingerprint* (its parameters, the samples' ids and file hashes,
their labels if the signal reads them, and the fingerprints of the signals it depends
on) differs from the one recorded at its last complete run, or when ``recompute`` is set.

Resumability: long work is split into chunks (or folds) saved under ``work_dir`` with
:class:`ChunkStore`; an interrupted run leaves finished chunks on disk and the next run
with the same fingerprint picks them up. The runner marks a signal's record incomplete
after ``compute`` returns and before the first write, and complete after the last, so a
kill between two writes leaves a record the next run recomputes, never one it skips; a
signal that refuses to run (a FercurateError in ``compute``) has written nothing and
leaves its previous record as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import fiftyone as fo

from fercurate import config, schema


@dataclass
class SampleTable:
    """The columns a signal reads, pulled once from the dataset in a fixed order."""

    ids: list[str]
    filepaths: list[str]
    labels: list[str]
    splits: list[str]
    file_hashes: list[str]
    classes: list[str]
    dataset_name: str = ""  # lets a signal whose fingerprint reads other fields find them

    @classmethod
    def load(cls, ds: fo.Dataset) -> "SampleTable":
        ids, paths, labels, splits, hashes = ds.values(
            ["id", "filepath", f"{schema.GROUND_TRUTH}.label", schema.SPLIT, schema.FILE_HASH])
        classes = list(ds.info.get(schema.INFO_CLASSES) or ds.default_classes or sorted(set(labels)))
        return cls(ids, paths, labels, splits, hashes, classes, ds.name)

    def __len__(self) -> int:
        return len(self.ids)

    def label_indices(self) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[lab] for lab in self.labels], dtype=np.int64)


@dataclass
class FieldWrite:
    """One sample field a signal sets. Exactly one of ``values`` (one per sample, in table
    order), ``sparse`` (id -> value; every other sample gets ``default``: cheap for fields
    set on few samples) or ``chunks`` (a callable yielding (ids, values) pieces: fields too
    large to hold as Python objects at once)."""

    name: str
    ftype: type
    values: list | None = None
    sparse: dict[str, Any] | None = None
    default: Any = None
    chunks: Callable[[], Iterable[tuple[list[str], list]]] | None = None
    validate: bool = True
    kwargs: dict = field(default_factory=dict)   # add_sample_field's subfield= / embedded_doc_type=


@dataclass
class SignalResult:
    """What a signal's ``compute`` returns: nothing is in the dataset until the runner writes it."""

    summary: dict
    fields: list[FieldWrite] = field(default_factory=list)
    #: dataset-level records written after the fields (dataset.info, brain runs, App config)
    finish: Callable[[fo.Dataset], None] | None = None


def write_result(ds: fo.Dataset, table: "SampleTable", result: SignalResult) -> None:
    """Declare and write every field of ``result``, then its dataset-level records.

    Sparse fields are reset together in one pass over the dataset, then set on their
    samples; the small fields go before the chunked ones (each update rewrites a whole
    sample document, and chunked fields such as landmarks make them large).
    """
    have = ds.get_field_schema()
    for f in result.fields:
        if f.name not in have:
            ds.add_sample_field(f.name, f.ftype, **f.kwargs)
    sparse = [f for f in result.fields if f.sparse is not None]
    if sparse:
        reset = ds.view()
        for f in sparse:
            reset = reset.set_field(f.name, f.default)
        reset.save([f.name for f in sparse])
        for f in sparse:
            if f.sparse:
                ds.set_values(f.name, f.sparse, key_field="id", validate=f.validate)
    for f in result.fields:
        if f.values is not None:
            if len(f.values) != len(table):
                raise ValueError(f"{f.name}: {len(f.values)} values for {len(table)} samples")
            ds.set_values(f.name, dict(zip(table.ids, f.values)), key_field="id", validate=f.validate)
    for f in result.fields:
        if f.chunks is not None:
            for ids, values in f.chunks():
                ds.set_values(f.name, dict(zip(ids, values)), key_field="id", validate=f.validate)
    if result.finish is not None:
        result.finish(ds)


class Signal(ABC):
    """One curation signal. Subclasses set ``name``, ``params`` and implement ``compute``."""

    name: str = ""
    #: signals whose results this one reads (they run first; their fingerprints feed ours)
    requires: tuple[str, ...] = ()
    #: whether the result depends on the labels (then a relabel makes it stale)
    uses_labels: bool = False
    #: bumped when the signal's saved work or fields change form, so older runs are redone
    version: int = 1

    def __init__(self, params: Any = None):
        self.params = params if params is not None else self.default_params()

    def default_params(self) -> Any:
        return None

    def params_dict(self) -> dict:
        p = self.params
        return dataclasses.asdict(p) if dataclasses.is_dataclass(p) else (p or {})

    def fingerprint(self, table: SampleTable, upstream: dict[str, str]) -> str:
        h = hashlib.sha256()
        payload = {"signal": self.name, "params": self.params_dict(),
                   "upstream": {k: upstream.get(k) for k in self.requires}}
        if self.version != 1:  # version 1 fingerprints stay what they were
            payload["version"] = self.version
        h.update(json.dumps(payload, sort_keys=True, default=str).encode())
        for i, fh in zip(table.ids, table.file_hashes):
            h.update(f"{i}:{fh}\n".encode())
        if self.uses_labels:
            h.update(json.dumps([table.labels, table.classes]).encode())
        return h.hexdigest()

    @abstractmethod
    def compute(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> SignalResult:
        """Do the work and return what to write; write nothing to ``ds`` itself.

        The summary holds dataset-level numbers (how many flagged, per class/split...)
        and is what ``fercurate status`` and ``fercurate report`` show.
        """

    def compute_and_write(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> dict:
        """``compute`` then :func:`write_result`, without the runner's bookkeeping (tests,
        notebooks); returns the summary."""
        result = self.compute(ds, table, work_dir)
        write_result(ds, table, result)
        return result.summary


class ChunkStore:
    """Numpy results of a long computation, saved one chunk at a time.

    ``get(key, fn)`` returns the saved arrays for ``key`` or computes ``fn()`` (a dict of
    arrays), saves it atomically, and returns it. A killed run keeps every saved chunk.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def load(self, key: str) -> dict[str, np.ndarray]:
        with np.load(self.path(key), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def save(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp.npz")
        os.close(fd)
        np.savez(tmp, **arrays)
        os.replace(tmp, self.path(key))

    def get(self, key: str, fn: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        if self.has(key):
            return self.load(key)
        arrays = fn()
        self.save(key, arrays)
        return arrays


def chunked(n: int, size: int) -> Iterable[tuple[int, slice]]:
    """(chunk index, slice) pairs covering range(n)."""
    for k, start in enumerate(range(0, n, size)):
        yield k, slice(start, min(n, start + size))


def work_dir_for(ds: fo.Dataset, signal_name: str, fingerprint: str) -> Path:
    return config.home() / "work" / ds.name / signal_name / fingerprint[:16]


def clear_other_work(keep: Path) -> None:
    """Remove work folders of older fingerprints (stale partial results)."""
    parent = keep.parent
    if parent.is_dir():
        for d in parent.iterdir():
            if d != keep:
                shutil.rmtree(d, ignore_errors=True)


