"""Benchmark: how well the label_issues signal finds labels we flipped on purpose.

On FER2013 (Kaggle folder layout), flip a fraction of the TRAIN labels uniformly at random
to another class (seeded), then compute out-of-fold probabilities for every image twice,
with the same stratified folds:

* ``cnn``: the signal's classifier (:func:`fercurate.signals.crossval.cross_val_probs`);
* ``logreg_pixels``: the plain recipe, logistic regression on standardised raw pixels.

Both go through the signal's cleanlab step (:func:`fercurate.signals.label_issues.score_labels`).
Reported per noise level and method, on the train split: AUROC of ``1 - label_quality`` for
finding the flipped labels, precision@k with k = number flipped, the flagged precision and
recall of the signal's issue flags; and out-of-fold accuracy against the given (noisy) labels
and the original labels, on all splits. FER2013's own label noise counts as "clean" here,
so no method can reach a perfect score.

    python bench/label_issues.py [PATH] [--limit 5000] [--noise 0.1 0.2] [--epochs 4] ...

Results go to stdout (JSON) and bench/results/label_issues[-limitN].json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fercurate.signals.classifier import ClassifierParams, load_images
from fercurate.signals.crossval import cross_val_probs
from fercurate.signals.label_issues import score_labels

REPO = Path(__file__).resolve().parent.parent


def read_fer2013_folder(root: Path) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """(paths, label indices, is-train mask, classes) of a Kaggle-layout FER2013."""
    classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
    paths, labels, train = [], [], []
    for top in ("train", "test"):
        for k, c in enumerate(classes):
            for f in sorted((root / top / c).glob("*.jpg")):
                paths.append(str(f)), labels.append(k), train.append(top == "train")
    return paths, np.array(labels), np.array(train), classes


def subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.arange(n) if not limit or limit >= n else np.sort(rng.choice(n, limit, replace=False))


def flip_labels(labels: np.ndarray, eligible: np.ndarray, rate: float, num_classes: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``rate`` of the eligible labels, each to a uniformly drawn *other* class."""
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(eligible)
    chosen = rng.choice(candidates, int(round(rate * len(candidates))), replace=False)
    noisy = labels.copy()
    noisy[chosen] = (labels[chosen] + rng.integers(1, num_classes, len(chosen))) % num_classes
    flipped = np.zeros(len(labels), bool)
    flipped[chosen] = True
    return noisy, flipped


def logreg_cross_val_probs(images: np.ndarray, labels: np.ndarray, fold: np.ndarray, num_classes: int) -> np.ndarray:
    """The plain recipe: out-of-fold probabilities of a logistic regression on raw pixels."""
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    probs = np.zeros((len(labels), num_classes))
    for k in range(int(fold.max()) + 1):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=300))
        model.fit(x[fold != k], labels[fold != k])
        probs[np.ix_(fold == k, model.classes_)] = model.predict_proba(x[fold == k])
    return probs


def detection_metrics(noisy: np.ndarray, clean: np.ndarray, flipped: np.ndarray, train: np.ndarray,
                      pred_probs: np.ndarray) -> dict:
    quality, is_issue, _ = score_labels(noisy, pred_probs)
    q, f, flag = quality[train], flipped[train], is_issue[train]
    k = int(f.sum())
    top_k = np.argsort(q, kind="stable")[:k]
    best = pred_probs.argmax(axis=1)
    return {
        "auroc": round(float(roc_auc_score(f, 1 - q)), 4),
        "precision_at_k": round(float(f[top_k].mean()), 4),
        "flagged": int(flag.sum()),
        "flagged_precision": round(float((flag & f).sum() / max(1, flag.sum())), 4),
        "flagged_recall": round(float((flag & f).sum() / max(1, k)), 4),
        "oof_accuracy_given": round(float(np.mean(best == noisy)), 4),
        "oof_accuracy_original": round(float(np.mean(best == clean)), 4),
    }


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_level(images, labels, train, classes, rate, params, seed, with_logreg) -> dict:
    noisy, flipped = flip_labels(labels, train, rate, len(classes), seed)
    wall, cpu = time.perf_counter(), cpu_seconds()
    cv = cross_val_probs(images, noisy, len(classes), params)
    out = {"noise": rate, "flipped": int(flipped.sum()),
           "cnn": {**detection_metrics(noisy, labels, flipped, train, cv.pred_probs),
                   "wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(cpu_seconds() - cpu, 1)}}
    if with_logreg:
        wall = time.perf_counter()
        probs = logreg_cross_val_probs(images, noisy, cv.fold[0], len(classes))  # the first partition's folds
        out["logreg_pixels"] = {**detection_metrics(noisy, labels, flipped, train, probs),
                                "wall_s": round(time.perf_counter() - wall, 1)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", type=Path, nargs="?", default=REPO.parent / "shared" / "data" / "fer2013")
    p.add_argument("--limit", type=int, default=None, help="random subset of this many images (development)")
    p.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.2], help="fractions of train labels flipped")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--noise-seed", type=int, default=0, help="seeds the subset and the flips")
    p.add_argument("--no-logreg", action="store_true", help="skip the logistic-regression baseline")
    for f in dataclasses.fields(ClassifierParams):  # --folds, --epochs, --arch ... override the defaults
        kind = type(f.default)
        p.add_argument(f"--{f.name.replace('_', '-')}", default=f.default,
                       type=(lambda s: s.lower() in ("1", "true", "yes", "on")) if kind is bool else kind)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    params = ClassifierParams(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ClassifierParams)})

    paths, labels, train, classes = read_fer2013_folder(args.path)
    keep = subset(len(paths), args.limit, args.noise_seed)
    t0 = time.perf_counter()
    images = load_images([paths[i] for i in keep], params.image_size)
    labels, train = labels[keep], train[keep]
    result = {"source": str(args.path), "images": len(keep), "train_images": int(train.sum()),
              "classes": classes, "params": dataclasses.asdict(params), "threads": args.threads,
              "read_s": round(time.perf_counter() - t0, 1),
              "levels": [run_level(images, labels, train, classes, rate, params, args.noise_seed + i, not args.no_logreg)
                         for i, rate in enumerate(args.noise)],
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "note": "timings on a shared 2-core machine: other processes slow them down"}
    print(json.dumps(result, indent=2))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"label_issues{f'-limit{args.limit}' if args.limit else ''}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
