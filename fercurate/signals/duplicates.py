"""duplicates: exact copies and near copies (the same photo re-encoded, re-cropped, shifted).

Exact duplicates are pixel-identical after decoding: the sha1 of the decoded pixels (an
RGB image whose channels are equal counts as grey), so one picture saved twice under
different names, or re-saved losslessly, matches even when the file bytes differ.

Near duplicates are found on a 48x48 grayscale copy of every image, in three steps:

1. candidates: each image's ``neighbors`` nearest images by cosine similarity of a coarse
   band-pass vector (difference of Gaussians, sigma 3 and 8 px, averaged to 12x12,
   zero-mean, unit-norm), by blocked matrix products;
2. broad check: the best normalised correlation between the centre of one image and a
   window of the other over 125 alignments (shifts up to 4 px in steps of 2, scales
   0.9-1.1), band-passed (sigma 1 and 6 px) at 24x24;
3. detail check, for pairs whose broad similarity is in [``detail_floor``,
   ``broad_threshold``): the same at 48x48 on a finer band (sigma 1.5 and 4 px), shifts
   up to 4 px in steps of 1, scales 0.88-1.12, the lower of both directions.

A pair's similarity is its detail similarity, or its broad similarity less
(``broad_threshold`` - ``near_threshold``) when that is higher; pairs at or above
``near_threshold`` are linked. So a pair is linked when its detail similarity reaches
0.90, or its broad one 0.95 (a copy whose fine detail was changed: sharpened,
watermarked, contrast-stretched).

Why band-pass: with plain zero-mean pixels, unrelated frontal faces under similar light
correlate at 0.90-0.95, as high as a shifted and rescaled copy. Removing the lighting
layout leaves eyes, mouth and hair, which only the same photo shares. Why the alignment
search: FER2013 holds the same photo cropped a few pixels differently.

Calibration on the real FER2013 (35,887 images), by contact sheets of candidate pairs:
pairs with a detail similarity >= 0.90 were the same photo (re-cropped, watermarked,
re-encoded) in ~95 % of random samples, including re-crops the broad check scores only
0.84-0.87; pairs with a broad similarity >= 0.95 all were, whatever their detail. On
80 hand-labelled pairs from the ambiguous band (broad 0.86-0.95), detail >= 0.90
classified 90 % right (broad alone: 78 %). The errors left are other frames of one
photo shoot and police mugshots of different men (same pose, light and framing).
Copies of real faces shifted up to 2 px, rescaled by 0.9-1.1 and re-saved at JPEG
quality 70 have a detail similarity >= 0.95 in 99 % of cases.

Exact copies are collapsed to one representative before the near search (twins would
fill each other's neighbour slots), and near-constant images (pixel std below
``blank_std``: blank frames, which all look alike once normalised) are left out of it;
the exact search still groups them.

Groups: union-find over the links gives connected sets; each set is then split into
stars (see :class:`Grouper`), so every member of a group is an exact copy of, or
directly linked to, the group's keeper (``dup_keeper``); the other members are flagged
``is_duplicate``. The keeper is chosen by, in order: (1) split, test before val before
train, so evaluation sets stay stable and train copies of test images (leakage) are the
ones dropped; (2) the label most images of the connected set carry; (3) the larger image
(pixels), then the larger file; (4) the smallest source_key. ``dup_kind`` is "exact" when
the group holds pixel-identical copies (even if it also holds near ones), else "near".
"""


from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import numpy as np
from tqdm import tqdm

from fercurate import schema
from fercurate.signals import register
from fercurate.signals.base import ChunkStore, FieldWrite, SampleTable, Signal, SignalResult, chunked
from fercurate.signals.duplicate_search import (  # noqa: F401  (re-exported: the signal's public algorithm)
    CANON, DuplicatesParams, Group, Grouper, connected, decode_files, near_similarity)


@register
class DuplicatesSignal(Signal):
    """Exact and near-duplicate images, grouped, with one keeper proposed per group."""

    name = "duplicates"
    requires = ()
    uses_labels = True  # label conflicts and the keeper depend on labels

    def default_params(self) -> DuplicatesParams:
        return DuplicatesParams()

    def compute(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> SignalResult:
        p: DuplicatesParams = self.params
        dec = self._decode(table, ChunkStore(work_dir / "decoded"))
        n = len(table)
        # one representative per distinct pixel content; blanks stay out of the near search
        _, rep, digest, counts = np.unique(dec["digest"], return_index=True, return_inverse=True,
                                           return_counts=True)
        blank = dec["canon"].reshape(n, CANON * CANON).std(axis=1) < p.blank_std
        searched = np.flatnonzero(~blank[rep])
        local_pairs, sims = near_similarity(dec["canon"][rep[searched]], p, ChunkStore(work_dir / "near"))
        pairs = searched[local_pairs]                     # content id pairs
        linked = pairs[sims >= p.near_threshold]
        links: dict[int, set[int]] = {}
        for a, b in linked.tolist():
            links.setdefault(a, set()).add(b)
            links.setdefault(b, set()).add(a)

        best = np.zeros(len(rep), np.float32)             # similarity to the closest other image
        np.maximum.at(best, pairs[:, 0], sims)
        np.maximum.at(best, pairs[:, 1], sims)
        best[counts > 1] = 1.0
        score = 1.0 - np.clip(best[digest], 0.0, 1.0)

        grouper = Grouper(digest, links, table.labels, table.splits, dec["area"], dec["nbytes"],
                          self._source_keys(ds, table))
        groups = grouper.groups(connected(len(rep), linked))
        return SignalResult(self._summary(table, groups, score, int(blank.sum())), self._fields(table, groups, score))

    def _decode(self, table: SampleTable, store: ChunkStore) -> dict[str, np.ndarray]:
        parts = []
        with tqdm(total=len(table), desc="decoding (duplicates)", unit=" img") as bar:
            for k, sl in chunked(len(table), self.params.chunk_size):
                parts.append(store.get(f"chunk{k:05d}", lambda sl=sl: decode_files(table.filepaths[sl])))
                bar.update(sl.stop - sl.start)
        if not parts:
            return decode_files([])
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    @staticmethod
    def _source_keys(ds: fo.Dataset, table: SampleTable) -> list[str]:
        ids, keys = ds.values(["id", schema.SOURCE_KEY])
        key_of = dict(zip(ids, keys))
        return [key_of.get(i) or fp for i, fp in zip(table.ids, table.filepaths)]

    @staticmethod
    def _fields(table: SampleTable, groups: list[Group], score: np.ndarray) -> list[FieldWrite]:
        """Group fields are sparse (set on members, reset elsewhere in one pass): most images
        are in no group, and a full per-field write costs seconds on FER2013."""
        kinds = {schema.DUP_GROUP: (fo.StringField, None), schema.DUP_KIND: (fo.StringField, None),
                 schema.DUP_KEEPER: (fo.BooleanField, None), schema.IS_DUPLICATE: (fo.BooleanField, False),
                 schema.DUP_LABEL_CONFLICT: (fo.BooleanField, False), schema.DUP_CROSS_SPLIT: (fo.BooleanField, False)}
        values: dict[str, dict[str, object]] = {f: {} for f in kinds}
        for g in groups:
            for i in g.members:
                sid = table.ids[i]
                values[schema.DUP_GROUP][sid] = g.id
                values[schema.DUP_KIND][sid] = g.kind
                values[schema.DUP_KEEPER][sid] = i == g.keeper
                values[schema.IS_DUPLICATE][sid] = i != g.keeper
                values[schema.DUP_LABEL_CONFLICT][sid] = g.label_conflict
                values[schema.DUP_CROSS_SPLIT][sid] = len(g.splits) > 1
        fields = [FieldWrite(f, ftype, sparse=values[f], default=default) for f, (ftype, default) in kinds.items()]
        return fields + [FieldWrite(schema.DUP_SCORE, fo.FloatField, np.round(score, 4).tolist())]

    def _summary(self, table: SampleTable, groups: list[Group], score: np.ndarray, blanks: int) -> dict:
        def spans(a: str, b: str) -> int:
            return sum({a, b} <= g.splits for g in groups)

        # most telling groups first: conflicting labels, then leakage across splits, then size
        ranked = sorted(groups, key=lambda g: (not g.label_conflict, len(g.splits) < 2, -len(g.members)))
        top = []
        for g in ranked[:10]:
            i = min((m for m in g.members if m != g.keeper), key=lambda m: (score[m], m))
            top.append({"id": table.ids[i], "filepath": table.filepaths[i], "label": table.labels[i],
                        "score": round(float(score[i]), 4), "group": g.id,
                        "kind": g.kind, "group_size": len(g.members),
                        "group_labels": sorted({table.labels[m] for m in g.members}),
                        "group_splits": sorted(g.splits)})
        return {
            "total": len(table),
            "flagged": sum(len(g.members) - 1 for g in groups),
            "groups": len(groups),
            "exact_groups": sum(g.kind == "exact" for g in groups),
            "near_groups": sum(g.kind == "near" for g in groups),
            "label_conflict_groups": sum(g.label_conflict for g in groups),
            "cross_split_groups": {"train-test": spans(schema.TRAIN, schema.TEST),
                                   "train-val": spans(schema.TRAIN, schema.VAL),
                                   "val-test": spans(schema.VAL, schema.TEST)},
            "images_in_groups": sum(len(g.members) for g in groups),
            "largest_group": max((len(g.members) for g in groups), default=0),
            "near_constant_skipped": blanks,
            "near_threshold": self.params.near_threshold,
            "top": top,
        }
