"""Out-of-fold probabilities: every image scored by models that never saw its label.

Folds respect duplicate groups: two copies of one photo always land in the same fold,
else the copy in the training folds hands the held-out image its own label (FER2013
holds ~3,800 duplicate groups, 469 of them with conflicting labels). ``repeats``
independent K-fold partitions are trained and each image's held-out predictions
averaged: an ensemble that costs ``repeats`` x (K-1) training runs on the data, and
beats one bigger K at the same cost on the crowd truth (``bench/curation_quality.py``).

Each fold's model is independent of the others, so they train in ``workers`` processes
at once, each with its share of the CPU threads: small convolutions on 48-px images do
not keep two threads busy, and two one-thread processes train ~1.2x more images per
second than one two-thread process on a 2-core machine. The result does not depend on
``workers`` (every model is seeded by its fold).

One fold at a time goes through a :class:`~fercurate.signals.base.ChunkStore`, so a
killed run keeps the folds it finished. The first model also embeds *every* image (its
penultimate layer): one model, so all vectors live in one space; the embeddings signal
uses them as its weight-free fallback.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from tqdm import tqdm

from fercurate.errors import FercurateError
from fercurate.signals.base import ChunkStore
from fercurate.signals import classifier
from fercurate.signals.classifier import ClassifierParams


@dataclass
class CrossValResult:
    pred_probs: np.ndarray   # (N, C) out-of-fold probabilities averaged over repeats, rows sum to 1
    fold: np.ndarray         # (R, N) the fold each sample was held out in, per repeat
    features: np.ndarray     # (N, D) penultimate features of the first model, every sample


@dataclass(frozen=True)
class FoldTask:
    """One model to train: hold out fold ``k`` of partition ``repeat``."""

    name: str        # its ChunkStore key
    repeat: int
    k: int
    seed: int
    embed: bool      # also embed every image (the first model only)
    desc: str


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


def fold_tasks(folds: int, repeats: int, seed: int) -> list[FoldTask]:
    """Every model of the cross-validation, in a fixed order (names are the store keys)."""
    tasks = []
    for r in range(repeats):
        for k in range(folds):
            desc = f"fold {k + 1}/{folds}" + (f" of repeat {r + 1}/{repeats}" if repeats > 1 else "")
            tasks.append(FoldTask(f"fold{k}" if r == 0 else f"repeat{r}-fold{k}", r, k,
                                  seed + k + 100 * r, r == 0 and k == 0, desc))
    return tasks


def run_fold(images: np.ndarray, labels: np.ndarray, fold: np.ndarray, task: FoldTask, num_classes: int,
             params: ClassifierParams, trainable: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Train on every fold but ``task.k`` (only the ``trainable`` samples of them, when given),
    predict all of fold ``task.k``; the first model embeds every image."""
    train, held = fold != task.k, fold == task.k
    if trainable is not None:
        train &= trainable
    model = classifier.train_model(images[train], labels[train], num_classes, params, seed=task.seed,
                                   desc=task.desc)
    if not task.embed:
        return {"probs": classifier.predict(model, images[held], params)[0]}
    probs, feats = classifier.predict(model, images, params, features=True)
    return {"probs": probs[held], "features": feats}


# --- worker processes ---------------------------------------------------------------------

_SHARED: dict = {}  # per worker process: the arrays every fold reads, sent once


def _start_worker(images: np.ndarray, labels: np.ndarray, assignments: np.ndarray, num_classes: int,
                  params: ClassifierParams, threads: int, trainable: np.ndarray | None = None) -> None:
    import torch
    torch.set_num_threads(threads)
    _SHARED.update(images=images, labels=labels, assignments=assignments, num_classes=num_classes, params=params,
                   trainable=trainable)


def _run_task(task: FoldTask) -> tuple[FoldTask, dict[str, np.ndarray]]:
    s = _SHARED
    return task, run_fold(s["images"], s["labels"], s["assignments"][task.repeat], task, s["num_classes"], s["params"],
                          s["trainable"])


#: below this many images, starting worker processes (a few seconds each) costs more than it saves
MIN_PARALLEL_IMAGES = 2000


def default_workers() -> int:
    """Two training processes where there are two cores or more."""
    return max(1, min(2, os.cpu_count() or 1))


def _train_all(tasks: list[FoldTask], images: np.ndarray, labels: np.ndarray, assignments: np.ndarray,
               num_classes: int, params: ClassifierParams, workers: int, done,
               trainable: np.ndarray | None = None) -> None:
    """Train every task's model, calling ``done(task, arrays)`` as each finishes."""
    if workers <= 1 or len(tasks) <= 1 or len(images) < MIN_PARALLEL_IMAGES:
        for task in tasks:
            done(task, run_fold(images, labels, assignments[task.repeat], task, num_classes, params, trainable))
        return
    import torch
    threads = max(1, torch.get_num_threads() // workers)
    # spawned, not forked: the parent holds MongoDB and tqdm threads a fork would inherit half-way
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx, initializer=_start_worker,
                             initargs=(images, labels, assignments, num_classes, params, threads, trainable)) as pool:
        futures = [pool.submit(_run_task, task) for task in tasks]
        try:
            for future in as_completed(futures):
                done(*future.result())
        except BrokenProcessPool as e:
            raise FercurateError(
                "label_issues: a training process died (out of memory?); run again to resume the finished "
                "folds, and when calling fercurate from your own script put the call under "
                "'if __name__ == \"__main__\":' (workers re-import the script)") from e
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def cross_val_probs(images: np.ndarray, labels: np.ndarray, num_classes: int, params: ClassifierParams,
                    folds: int | None = None, store: ChunkStore | None = None,
                    groups: np.ndarray | None = None, workers: int = 1,
                    trainable: np.ndarray | None = None, desc: str = "cross-validation") -> CrossValResult:
    """Out-of-fold probabilities for every image, one fold per ``store`` chunk (resumable).

    ``folds`` overrides ``params.folds`` (the caller lowers it for tiny classes); ``groups``
    keeps each duplicate group inside one fold; ``workers`` trains that many folds at once;
    ``trainable`` (bool per sample) leaves the other samples' labels out of training (they
    are still predicted when held out): a second round that does not learn the labels the
    first found wrong.
    """
    folds = folds or params.folds
    repeats = max(1, params.repeats)
    assignments = np.stack([fold_assignment(labels, folds, params.seed + 1000 * r, groups)
                            for r in range(repeats)])
    tasks = fold_tasks(folds, repeats, params.seed)
    results: dict[str, dict[str, np.ndarray]] = {}
    bar = tqdm(total=len(tasks), desc=desc, unit=" fold")

    def done(task: FoldTask, arrays: dict[str, np.ndarray]) -> None:
        if store is not None:
            store.save(task.name, arrays)
        results[task.name] = arrays
        bar.update(1)

    for task in tasks:
        if store is not None and store.has(task.name):
            done(task, store.load(task.name))
    todo = [t for t in tasks if t.name not in results]
    try:
        _train_all(todo, images, labels, assignments, num_classes, params, workers, done, trainable)
    finally:
        bar.close()
    pred_probs = np.zeros((len(labels), num_classes), dtype=np.float64)
    for task in tasks:
        pred_probs[assignments[task.repeat] == task.k] += results[task.name]["probs"]
    pred_probs /= repeats
    return CrossValResult(pred_probs.astype(np.float32), assignments, results[tasks[0].name]["features"])
