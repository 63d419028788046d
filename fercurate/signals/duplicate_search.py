"""Duplicate search on pixels: exact digests, near-copy similarity, groups and keepers.

Pure work on arrays and files (no database): :mod:`fercurate.signals.duplicates` runs it
over a dataset and says how the method was calibrated.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, UnidentifiedImageError
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm import tqdm

from fercurate import schema
from fercurate.errors import FercurateError
from fercurate.signals.base import ChunkStore, chunked

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
