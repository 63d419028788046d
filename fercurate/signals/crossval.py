"""Out-of-fold probabilities: every image scored by models that never saw its label.

Folds respect duplicate groups: two copies of one photo always land in the same fold,
else the copy in the training folds hands the held-out image its own label (FER2013
holds ~3,800 duplicate groups, 469 of them with conflicting labels). ``repeats``
independent K-fold partitions are trained and each image's held-out predictions
averaged: an ensemble that costs ``repeats`` x (K-1) training runs on the data, and
beats one bigger K at the same cost on the crowd truth (``bench/curation_quality.py``).

One fold at a time goes through a :class:`~fercurate.signals.base.ChunkStore`, so a
killed run keeps the folds it finished. The first model also embeds *every* image (its
penultimate layer): one model, so all vectors live in one space; the embeddings signal
uses them as its weight-free fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from tqdm import tqdm

from fercurate.signals.base import ChunkStore
from fercurate.signals import classifier
from fercurate.signals.classifier import ClassifierParams


@dataclass
class CrossValResult:
    pred_probs: np.ndarray   # (N, C) out-of-fold probabilities averaged over repeats, rows sum to 1
    fold: np.ndarray         # (R, N) the fold each sample was held out in, per repeat
    features: np.ndarray     # (N, D) penultimate features of the first model, every sample


def fold_assignment(labels: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Each sample's held-out fold: stratified by label, a group never split, fixed by the seed.

    ``groups`` holds one id per sample (a duplicate group, or a unique id for an image with
    no copy); None treats every sample as its own group.
    """
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    fold = np.empty(len(labels), dtype=np.int64)
    sgkf = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(sgkf.split(np.zeros(len(labels)), labels, groups)):
        fold[test] = k
    return fold


def run_fold(images: np.ndarray, labels: np.ndarray, fold: np.ndarray, k: int, num_classes: int,
             params: ClassifierParams, seed: int, embed: bool, desc: str) -> dict[str, np.ndarray]:
    """Train on every fold but ``k``, predict fold ``k``; with ``embed``, embed every image."""
    train, held = fold != k, fold == k
    model = classifier.train_model(images[train], labels[train], num_classes, params, seed=seed, desc=desc)
    if not embed:
        return {"probs": classifier.predict(model, images[held], params)[0]}
    probs, feats = classifier.predict(model, images, params, features=True)
    return {"probs": probs[held], "features": feats}


def cross_val_probs(images: np.ndarray, labels: np.ndarray, num_classes: int, params: ClassifierParams,
                    folds: int | None = None, store: ChunkStore | None = None,
                    groups: np.ndarray | None = None) -> CrossValResult:
    """Out-of-fold probabilities for every image, one fold per ``store`` chunk (resumable).

    ``folds`` overrides ``params.folds`` (the caller lowers it for tiny classes); ``groups``
    keeps each duplicate group inside one fold.
    """
    folds = folds or params.folds
    repeats = max(1, params.repeats)
    assignments = np.stack([fold_assignment(labels, folds, params.seed + 1000 * r, groups)
                            for r in range(repeats)])
    pred_probs = np.zeros((len(labels), num_classes), dtype=np.float64)
    features = None
    bar = tqdm(total=repeats * folds, desc="cross-validation", unit=" fold")
    for r, fold in enumerate(assignments):
        for k in range(folds):
            embed = r == 0 and k == 0
            name = f"fold{k}" if r == 0 else f"repeat{r}-fold{k}"

            desc = f"fold {k + 1}/{folds}" + (f" of repeat {r + 1}/{repeats}" if repeats > 1 else "")

            def work(k: int = k, fold: np.ndarray = fold, embed: bool = embed, desc: str = desc):
                return run_fold(images, labels, fold, k, num_classes, params,
                                seed=params.seed + k + 100 * r, embed=embed, desc=desc)
            out = store.get(name, work) if store is not None else work()
            pred_probs[fold == k] += out["probs"]
            if embed:
                features = out["features"]
            bar.update(1)
    bar.close()
    pred_probs /= repeats
    return CrossValResult(pred_probs.astype(np.float32), assignments, features)
