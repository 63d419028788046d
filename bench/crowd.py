"""Crowd votes as a development truth: reading them, and the metrics both curation
benchmarks report (``curation_quality.py``, ``curation_effect.py``).

The votes (FER+ relabelling of FER2013's val split: 10 annotators per image) measure
curation on human judgement. They are never an input of a signal nor training data:
only these benchmarks read them.

Columns of the votes CSV: ``relpath`` (path under the FER2013 folder, i.e. the sample's
``source_key``), ``fer2013_label``, the ten vote counts, ``crowd_label`` (plurality in
FER2013 names, or contempt / unknown / NF / tie), ``usable`` (0 = not a usable face).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
#: vote column -> FER2013 class name
VOTE_TO_CLASS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                 "anger": "angry", "disgust": "disgust", "fear": "fear"}


@dataclass
class Votes:
    relpath: list[str]
    crowd_label: list[str]       # plurality, or contempt/unknown/NF/tie/"" (dropped)
    usable: np.ndarray           # bool
    counts: np.ndarray           # (N, 10) votes in VOTE_COLUMNS order

    def index(self) -> dict[str, int]:
        return {r: i for i, r in enumerate(self.relpath)}

    def crowd_distribution(self, classes: list[str]) -> np.ndarray:
        """(N, C) share of the 7 emotion votes per class (rows of zeros when none)."""
        cols = [VOTE_COLUMNS.index(next(v for v, c in VOTE_TO_CLASS.items() if c == k)) for k in classes]
        d = self.counts[:, cols].astype(float)
        total = d.sum(1, keepdims=True)
        return np.divide(d, total, out=np.zeros_like(d), where=total > 0)


def read_votes(path: Path) -> Votes:
    """The votes CSV, or a one-line exit naming the file and the missing column."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f"{path}: cannot read the votes CSV ({e.strerror})")
    need = ("relpath", "crowd_label", "usable", *VOTE_COLUMNS)
    missing = [c for c in need if rows and c not in rows[0]]
    if not rows or missing:
        sys.exit(f"{path}: not a crowd-votes CSV (missing column(s) {', '.join(missing) or 'all: empty file'})")
    counts = np.array([[int(r[c] or 0) for c in VOTE_COLUMNS] for r in rows])
    return Votes([r["relpath"] for r in rows], [r["crowd_label"] or "" for r in rows],
                 np.array([r["usable"] == "1" for r in rows]), counts)


def bench_parser(doc: str, dataset_help: str, out: Path) -> "argparse.ArgumentParser":
    """The arguments every crowd benchmark takes: a dataset, the votes CSV and ``--out``."""
    import argparse
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help=dataset_help)
    ap.add_argument("votes", type=Path, help="crowd votes CSV (see bench/crowd.py for its columns)")
    ap.add_argument("--out", type=Path, default=out)
    return ap


def load_launched(name: str, need: tuple[str, ...]):
    """A fercurate dataset whose signals are computed, or a one-line exit naming what to run:
    what every crowd benchmark reads."""
    import fercurate  # noqa: F401  (points FiftyOne at fercurate's database)
    from fercurate import dataset as fdataset
    from fercurate.errors import FercurateError
    try:
        ds = fdataset.load(name)
    except FercurateError as e:
        sys.exit(str(e))
    for field in need:
        if not ds.has_sample_field(field):
            sys.exit(f"dataset '{ds.name}' has no field '{field}'; run 'fercurate launch {ds.name}' first")
    return ds


def ranking_metrics(wrong: np.ndarray, score: np.ndarray, ks: tuple[int, ...]) -> dict:
    """How well ``score`` (lower = more likely wrong) ranks the labels the crowd disputes."""
    order = np.argsort(score, kind="stable")
    out = {"n": int(len(wrong)), "disputed": int(wrong.sum()),
           "auroc": round(float(roc_auc_score(wrong, -score)), 4),
           "average_precision": round(float(average_precision_score(wrong, -score)), 4)}
    for k in ks:
        if k <= len(order):
            out[f"precision@{k}"] = round(float(wrong[order[:k]].mean()), 4)
    return out


def most_trusted(score: np.ndarray, kept_share: float) -> np.ndarray:
    """Indices of the ``kept_share`` highest scores (ties: first in order): what a curator keeps
    when dropping the rest."""
    return np.argsort(-score, kind="stable")[:round(kept_share * len(score))]


def share(x: np.ndarray) -> float | None:
    return round(float(np.mean(x)), 4) if len(x) else None
