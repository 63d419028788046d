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

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import fiftyone as fo
import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, UnidentifiedImageError
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm import tqdm

from fercurate import schema
from fercurate.errors import FercurateError
from fercurate.signals import register
from fercurate.signals.base import ChunkStore, SampleTable, Signal, chunked, set_field

CANON = 48                       # side of the grayscale copy every comparison uses
# candidates: band-pass vector, 12x12
COARSE_DOG = (3.0, 8.0)          # Gaussian sigmas, px at 48
# broad check: band-pass at 24 px; centre 16x16 against windows shifted by 0-2 px (0-4 px
# at 48) and rescaled
BROAD_DOG = (1.0, 6.0)
BROAD_SIDE = 24
TEMPLATE = 16
BROAD_SHIFT = 2                  # windows offset by -2..2 px at 24 (steps of 2 px at 48)
BROAD_SCALES = (0.9, 0.95, 1.0, 1.05, 1.1)
# detail check: finer band at 48 px; centre 32x32 against shifts of 0-4 px, 7 scales
DETAIL_DOG = (1.5, 4.0)
DETAIL_MARGIN = 8
DETAIL_SHIFT = 4
DETAIL_SCALES = (0.88, 0.92, 0.96, 1.0, 1.04, 1.08, 1.12)
SPLIT_PRIORITY = {schema.TEST: 0, schema.VAL: 1, schema.TRAIN: 2}
_CV_MAX_CHANNELS = 512           # OpenCV filters up to 512 channels in one call


@dataclass
class DuplicatesParams:
    #: similarity at or above which two images are near duplicates (see the docstring)
    near_threshold: float = 0.90
    #: broad (24 px) similarity that links a pair whatever its detail similarity
    broad_threshold: float = 0.95
    #: broad similarity from which a candidate pair gets the (slower) detail check
    detail_floor: float = 0.84
    #: candidates per image from the coarse search
    neighbors: int = 16
    #: pixel std (0-255) below which an image is near-constant and skips the near search
    blank_std: float = 3.0
    #: images decoded per resumable chunk
    chunk_size: int = 4096
    #: images per block of the candidate search (memory: block x images x 4 bytes)
    block_size: int = 512


# --- decoding ----------------------------------------------------------------------------

def decoded_pixels(im: Image.Image) -> np.ndarray:
    """The pixels as uint8 HxW (grey) or HxWx3; an RGB image with equal channels is grey."""
    if im.mode != "L":
        rgb = np.asarray(im.convert("RGB"))
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            return np.ascontiguousarray(rgb[..., 0])
        return rgb
    return np.asarray(im)


def pixel_digest(pixels: np.ndarray) -> str:
    return hashlib.sha1(str(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def canonical_gray(pixels: np.ndarray) -> np.ndarray:
    gray = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    if gray.shape != (CANON, CANON):
        gray = cv2.resize(gray, (CANON, CANON), interpolation=cv2.INTER_AREA)
    return gray


def decode_one(path: str) -> tuple[np.ndarray, str, int, int]:
    """(48x48 grey copy, pixel digest, pixel count, file size) of one image."""
    try:
        with Image.open(path) as im:
            pixels = decoded_pixels(im)
        size = os.path.getsize(path)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise FercurateError(f"{path}: cannot decode image ({e}); restore the file or re-ingest "
                             "with 'fercurate ingest --update' to drop it") from e
    return canonical_gray(pixels), pixel_digest(pixels), pixels.shape[0] * pixels.shape[1], size


def decode_files(paths: list[str]) -> dict[str, np.ndarray]:
    with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decodes without the GIL
        rows = list(pool.map(decode_one, paths, chunksize=64))
    return {
        "canon": np.stack([r[0] for r in rows]) if rows else np.zeros((0, CANON, CANON), np.uint8),
        "digest": np.array([r[1] for r in rows], dtype="U40"),
        "area": np.array([r[2] for r in rows], dtype=np.int64),
        "nbytes": np.array([r[3] for r in rows], dtype=np.int64),
    }


# --- features ----------------------------------------------------------------------------

def _per_channel(fn, images: np.ndarray) -> np.ndarray:
    """Apply a 2-D OpenCV function to a stack (n, h, w) by treating images as channels."""
    out = []
    for start in range(0, len(images), _CV_MAX_CHANNELS):
        block = np.ascontiguousarray(images[start:start + _CV_MAX_CHANNELS].transpose(1, 2, 0))
        res = fn(block)
        out.append((res if res.ndim == 3 else res[..., None]).transpose(2, 0, 1))
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:], np.float32)


def block_mean(x: np.ndarray, f: int) -> np.ndarray:
    """Average f x f blocks of a stack (n, h, w): area downsampling by an integer factor."""
    if f == 1:
        return x
    n, h, w = x.shape
    return x.reshape(n, h // f, f, w // f, f).mean(axis=(2, 4))


def band_pass(x: np.ndarray, sigmas: tuple[float, float]) -> np.ndarray:
    """Difference of Gaussians of a stack (n, h, w): keeps features, drops the lighting layout."""
    x = x.astype(np.float32)
    return (_per_channel(lambda b: cv2.GaussianBlur(b, (0, 0), sigmas[0]), x)
            - _per_channel(lambda b: cv2.GaussianBlur(b, (0, 0), sigmas[1]), x))


def unit(v: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm along the last axis (a constant vector stays zero)."""
    v = v - v.mean(axis=-1, keepdims=True)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-6)


def coarse_vectors(canon: np.ndarray) -> np.ndarray:
    """Candidate-search vectors, (n, 144): band-passed at 24 px (cheaper than at 48), 12x12."""
    half = block_mean(canon.astype(np.float32), 2)
    low = band_pass(half, (COARSE_DOG[0] / 2, COARSE_DOG[1] / 2))
    return unit(block_mean(low, 2).reshape(len(canon), -1))


def broad_images(canon: np.ndarray) -> np.ndarray:
    """The 24x24 band-passed images the first verification compares."""
    return block_mean(band_pass(canon, BROAD_DOG), CANON // BROAD_SIDE)


def templates(broad: np.ndarray) -> np.ndarray:
    m = (BROAD_SIDE - TEMPLATE) // 2
    return unit(broad[:, m:m + TEMPLATE, m:m + TEMPLATE].reshape(len(broad), -1))


def aligned_windows(broad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every shifted and rescaled TEMPLATE-sized window, raw: (n, alignments, TEMPLATE^2),
    and the norm of each once centred (n, alignments). Dividing the dot products by the
    norms afterwards equals correlating normalised windows, without a normalised copy."""
    n, offsets = len(broad), 2 * BROAD_SHIFT + 1
    windows = np.empty((n, len(BROAD_SCALES), offsets, offsets, TEMPLATE, TEMPLATE), np.float32)
    for k, s in enumerate(BROAD_SCALES):
        side = int(round(BROAD_SIDE * s))
        g = broad if side == BROAD_SIDE else _per_channel(
            lambda b: cv2.resize(b, (side, side), interpolation=cv2.INTER_LINEAR), broad)
        lo = (side - TEMPLATE) // 2 - BROAD_SHIFT
        all_windows = sliding_window_view(g, (TEMPLATE, TEMPLATE), axis=(1, 2))
        windows[:, k] = all_windows[:, lo:lo + offsets, lo:lo + offsets]
    windows = windows.reshape(n, -1, TEMPLATE * TEMPLATE)
    sums = windows.sum(axis=-1)
    centred_sq = np.einsum("nad,nad->na", windows, windows) - sums * sums / windows.shape[-1]
    return windows, np.sqrt(np.maximum(centred_sq, 1e-12))


def detail_match(a: np.ndarray, b: np.ndarray) -> float:
    """Best correlation of a's centre with b rescaled and shifted (b's centre +- DETAIL_SHIFT)."""
    m = DETAIL_MARGIN
    tmpl = a[m:CANON - m, m:CANON - m]
    best = -1.0
    for s in DETAIL_SCALES:
        side = int(round(CANON * s))
        g = cv2.resize(b, (side, side), interpolation=cv2.INTER_LINEAR)
        lo = (side - tmpl.shape[0]) // 2 - DETAIL_SHIFT
        region = g[lo:lo + tmpl.shape[0] + 2 * DETAIL_SHIFT, lo:lo + tmpl.shape[1] + 2 * DETAIL_SHIFT]
        best = max(best, float(cv2.matchTemplate(region, tmpl, cv2.TM_CCOEFF_NORMED).max()))
    return best


def detail_similarity(canon: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Aligned correlation at 48 px of fine features, the lower of both directions."""
    needed, local = np.unique(pairs, return_inverse=True)
    dog = band_pass(canon[needed], DETAIL_DOG)

    def both_ways(pair: np.ndarray) -> float:
        return min(detail_match(dog[pair[0]], dog[pair[1]]), detail_match(dog[pair[1]], dog[pair[0]]))

    with ThreadPoolExecutor(max_workers=2) as pool:  # OpenCV releases the GIL
        sims = list(tqdm(pool.map(both_ways, local.reshape(pairs.shape), chunksize=64), total=len(pairs),
                         desc="near duplicates: detail check", unit=" pair", leave=False))
    return np.array(sims, dtype=np.float32)


# --- search ------------------------------------------------------------------------------

def nearest_candidates(coarse: torch.Tensor, rows: slice, k: int) -> np.ndarray:
    """Indices of the k most similar other vectors for each row in ``rows``."""
    sims = coarse[rows] @ coarse.T
    sims[torch.arange(sims.shape[0]), torch.arange(rows.start, rows.stop)] = -float("inf")
    return sims.topk(k, dim=1).indices.numpy()


def broad_similarity(broad: np.ndarray, tmpl: np.ndarray, rows: slice, nbrs: np.ndarray) -> np.ndarray:
    """Best aligned correlation at 24 px of each row image with each candidate: (rows, k)."""
    windows, norms = aligned_windows(broad[rows])     # templates are centred: raw dots suffice
    return (np.matmul(windows, tmpl[nbrs].transpose(0, 2, 1)) / norms[..., None]).max(axis=1)


def candidate_pairs(canon: np.ndarray, p: DuplicatesParams, store: ChunkStore) -> tuple[np.ndarray, np.ndarray]:
    """Each image's ``neighbors`` candidates as (i, j) pairs (i < j, unique), with the
    higher of their two broad similarities."""
    n = len(canon)
    k = min(p.neighbors, n - 1)
    if k < 1:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    coarse = torch.from_numpy(np.concatenate([coarse_vectors(canon[sl]) for _, sl in chunked(n, p.chunk_size)]))
    broad = np.concatenate([broad_images(canon[sl]) for _, sl in chunked(n, p.chunk_size)])
    tmpl = templates(broad)
    pairs, sims = [], []
    for b, rows in tqdm(list(chunked(n, p.block_size)), desc="near duplicates: candidates", unit=" block"):
        def search(rows=rows):
            nbrs = nearest_candidates(coarse, rows, k)
            return {"nbrs": nbrs, "sims": broad_similarity(broad, tmpl, rows, nbrs)}
        got = store.get(f"block{b:05d}", search)
        pairs.append(np.stack([np.repeat(np.arange(rows.start, rows.stop), k), got["nbrs"].ravel()], axis=1))
        sims.append(got["sims"].ravel())
    pairs, sims = np.sort(np.concatenate(pairs), axis=1), np.concatenate(sims)
    order = np.argsort(-sims, kind="stable")
    _, first = np.unique(pairs[order], axis=0, return_index=True)
    keep = order[first]
    return pairs[keep], sims[keep]


def near_similarity(canon: np.ndarray, p: DuplicatesParams, store: ChunkStore) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs and their similarity (see the module docstring): the detail
    similarity, or the broad one less (broad_threshold - near_threshold) when higher."""
    pairs, broad = candidate_pairs(canon, p, store)
    sim = broad - (p.broad_threshold - p.near_threshold)
    checked = (broad >= p.detail_floor) & (broad < p.broad_threshold)  # above: linked anyway
    detail = store.get("detail", lambda: {"sims": detail_similarity(canon, pairs[checked])})["sims"]
    sim[checked] = np.maximum(sim[checked], detail)
    return pairs, sim


# --- grouping ----------------------------------------------------------------------------

def connected(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected component of every node given (i, j) edges (union-find, by scipy)."""
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


@dataclass
class Group:
    members: list[int]
    kind: str
    keeper: int
    label_conflict: bool
    splits: frozenset[str]
    id: str = ""


@dataclass
class Grouper:
    """Splits linked images into groups of one keeper and the images directly linked to it.

    Union-find alone chains A~B~C into one group although A and C may differ; on FER2013
    it chained 30 mugshots of different men through pairs at 0.90-0.92. So each connected
    set is split into stars: the best remaining member (the keeper rule) takes every
    remaining image that is its exact copy or directly linked to it, until none is left.
    """

    digest: np.ndarray           # per sample: id of its pixel content
    links: dict[int, set[int]]   # content id -> linked content ids
    labels: list[str]
    splits: list[str]
    area: np.ndarray
    nbytes: np.ndarray
    keys: list[str]

    def keeper_order(self, i: int, votes: Counter) -> tuple:
        """Sort key of a member: the smallest is kept (see the module docstring)."""
        return (SPLIT_PRIORITY.get(self.splits[i], len(SPLIT_PRIORITY)), -votes[self.labels[i]],
                -int(self.area[i]), -int(self.nbytes[i]), self.keys[i])

    def stars(self, contents: set[int], copies: dict[int, list[int]]) -> list[Group]:
        groups = []
        remaining = set(contents)
        while remaining:
            pool = [i for d in sorted(remaining) for i in copies[d]]
            votes = Counter(self.labels[i] for i in pool)
            keeper = min(pool, key=lambda i: self.keeper_order(i, votes))
            star = {int(self.digest[keeper])} | (self.links.get(int(self.digest[keeper]), set()) & remaining)
            remaining -= star
            members = sorted(i for d in star for i in copies[d])
            if len(members) > 1:
                groups.append(Group(members, "exact" if any(len(copies[d]) > 1 for d in star) else "near",
                                    keeper, len({self.labels[i] for i in members}) > 1,
                                    frozenset(self.splits[i] for i in members)))
        return groups

    def groups(self, component: np.ndarray) -> list[Group]:
        """All groups of two or more images, largest first (ties: smallest source_key)."""
        copies: dict[int, list[int]] = {}
        for i, d in enumerate(self.digest):
            copies.setdefault(int(d), []).append(i)
        contents_of: dict[int, set[int]] = {}
        for d, c in enumerate(component):
            contents_of.setdefault(int(c), set()).add(d)
        groups = [g for contents in contents_of.values()
                  if len(contents) > 1 or len(copies[next(iter(contents))]) > 1
                  for g in self.stars(contents, copies)]
        groups.sort(key=lambda g: (-len(g.members), min(self.keys[i] for i in g.members)))
        for number, g in enumerate(groups, start=1):
            g.id = f"dup-{number:05d}"
        return groups


@register
class DuplicatesSignal(Signal):
    """Exact and near-duplicate images, grouped, with one keeper proposed per group."""

    name = "duplicates"
    requires = ()
    uses_labels = True  # label conflicts and the keeper depend on labels

    def default_params(self) -> DuplicatesParams:
        return DuplicatesParams()

    def compute(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> dict:
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
        self._write(ds, table, groups, score)
        return self._summary(table, groups, score, int(blank.sum()))

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
    def _write(ds: fo.Dataset, table: SampleTable, groups: list[Group], score: np.ndarray) -> None:
        """Reset every group field in one pass, then write group members only: most images
        are in no group, and a full per-field write costs seconds on FER2013."""
        fields = {schema.DUP_GROUP: (fo.StringField, None), schema.DUP_KIND: (fo.StringField, None),
                  schema.DUP_KEEPER: (fo.BooleanField, None), schema.IS_DUPLICATE: (fo.BooleanField, False),
                  schema.DUP_LABEL_CONFLICT: (fo.BooleanField, False),
                  schema.DUP_CROSS_SPLIT: (fo.BooleanField, False), schema.DUP_SCORE: (fo.FloatField, None)}
        for field, (ftype, _) in fields.items():
            ds.add_sample_field(field, ftype)
        reset = ds.view()
        for field, (_, default) in fields.items():
            reset = reset.set_field(field, default)
        reset.save(list(fields))
        values: dict[str, dict[str, object]] = {f: {} for f in fields if f != schema.DUP_SCORE}
        for g in groups:
            for i in g.members:
                sid = table.ids[i]
                values[schema.DUP_GROUP][sid] = g.id
                values[schema.DUP_KIND][sid] = g.kind
                values[schema.DUP_KEEPER][sid] = i == g.keeper
                values[schema.IS_DUPLICATE][sid] = i != g.keeper
                values[schema.DUP_LABEL_CONFLICT][sid] = g.label_conflict
                values[schema.DUP_CROSS_SPLIT][sid] = len(g.splits) > 1
        if groups:
            for field, by_id in values.items():
                ds.set_values(field, by_id, key_field="id")
        set_field(ds, schema.DUP_SCORE, table.ids, np.round(score, 4).tolist())

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
