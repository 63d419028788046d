"""The manifest format: how a frozen version travels from fercurate to ``training``.

This module is the one definition both sides share (``fercurate export`` writes with it,
``training`` reads with it); it imports neither FiftyOne nor torch so that reading a
manifest stays cheap.

A manifest is UTF-8 JSON lines. Line 1 is the header, every other line one sample::

    {"format": "fercurate-manifest", "format_version": 2, "dataset": "fer2013",
     "version": "clean_v1", "content_hash": "sha256:…", "num_samples": 29812,
     "classes": ["angry", …], "split_counts": {"train": {"angry": 3200, …}, …},
     "policy": {"name": "class_weights", "class_weights": {"angry": 1.02, …},
                "oversample_repeat": {…}}, "frozen_at": "2026-…", "curator": "ana",
     "fercurate_version": "0.1.0"}
    {"id": "665f…", "filepath": "/data/fer2013/train/angry/im0.png", "label": "angry",
     "split": "train", "weight": 1.02, "original_label": "angry",
     "original_filepath": "/data/fer2013/train/angry/im0.png", "sha256": "9f2c…",
     "source": {"usage": …}}

* ``filepath`` is absolute: the aligned crop when the curator accepted ``use_crop``,
  otherwise the original image (``original_filepath``).
* ``weight`` is the sample's loss weight under the policy (1.0 unless the policy is
  ``class_weights``). ``oversample_repeat`` maps a class to how many times a sampler
  should draw its images per epoch (policy ``oversample``; 1.0 otherwise).
* ``soft_label`` (optional; present when the dataset has the ``label_issues`` signal) is
  the sample's out-of-fold class distribution (from models that never saw its label) in
  the header's class order: what ``training --soft-labels`` mixes into the hard label's
  target. Where a curator relabelled, ``label`` keeps its say through the mix.
* ``sha256`` (format version 2) is the sha256 of the bytes of ``filepath`` at freeze time:
  a version pins its images, not only their paths. ``fercurate export`` refuses a version
  whose files changed since, and ``training`` checks every image against it as it loads
  it. Version-1 manifests (no ``sha256``) are still read, unverified.
* ``content_hash`` is the sha256 of the sample lines exactly as written (each with its
  trailing newline), in file order, so a reader can prove a stream is complete and
  unaltered, and two exports of one version are byte-identical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

FORMAT = "fercurate-manifest"
FORMAT_VERSION = 2
#: format versions a reader accepts (1: before sample lines carried ``sha256``)
READABLE_VERSIONS: tuple[int, ...] = (1, 2)

#: Keys every header carries, and every sample line carries.
HEADER_KEYS: tuple[str, ...] = (
    "format", "format_version", "dataset", "version", "content_hash", "num_samples",
    "classes", "split_counts", "policy",
)
SAMPLE_KEYS: tuple[str, ...] = (
    "id", "filepath", "label", "split", "weight", "original_label", "original_filepath", "source",
)
#: Keys a sample line carries from format version 2 on.
SAMPLE_KEYS_V2: tuple[str, ...] = ("sha256",)

#: Keys a sample line may carry.
OPTIONAL_SAMPLE_KEYS: tuple[str, ...] = ("soft_label",)
#: decimals a soft label is written with (short lines, canonical bytes)
SOFT_LABEL_DECIMALS = 4

#: Rebalancing policies a version can be frozen with.
POLICIES: tuple[str, ...] = ("none", "class_weights", "oversample")


def dumps(record: dict) -> str:
    """One canonical JSON line (sorted keys, no spaces, trailing newline).

    Canonical so that the same version always serialises to the same bytes.
    """
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def content_hash(sample_lines: Iterable[str]) -> str:
    """sha256 over the sample lines as written, each ending in a newline."""
    h = hashlib.sha256()
    for line in sample_lines:
        h.update(line.encode("utf-8"))
    return "sha256:" + h.hexdigest()


def sha256_file(path: str) -> str | None:
    """sha256 of a file's bytes (what a sample line's ``sha256`` pins), or None when unreadable."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None
